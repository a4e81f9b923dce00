"""A server connection dropped between two operations (a restarted server, a backend terminated
by an administrator) costs nothing: the next operation finds it dead and runs once more on a new
one. Unlike the idle ping (test_checkpoint_saver), this catches connections that died moments
after their last use."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Connection, create_engine, text

from fathom.store import Database, connect
from fathom.store.errors import StoreError
from fathom.store.plans import Plan, execute, fetch_all
from tests.support.checkpoints import backend_url

__all__ = ["backend_url"]  # fixture


def kill_other_connections(url: str, backend: str) -> int:
    admin = create_engine(url)
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                return len(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
            ids = list(conn.execute(text("SELECT id FROM information_schema.processlist "
                                         "WHERE db = DATABASE() AND id <> CONNECTION_ID()")).scalars())
            for connection_id in ids:
                conn.execute(text(f"KILL {int(connection_id)}"))
            return len(ids)
    finally:
        admin.dispose()


def add(conn: Connection, value: str) -> int:
    conn.execute(text("INSERT INTO notes (value) VALUES (:v)"), {"v": value})
    return len(conn.execute(text("SELECT value FROM notes")).all())


def count(conn: Connection) -> int:
    return len(conn.execute(text("SELECT value FROM notes")).all())


def add_plan(value: str) -> Plan[int]:
    """The saver's kind of operation: a generator of statements, which cannot start over."""
    yield from execute(text("INSERT INTO notes (value) VALUES (:v)"), {"v": value})
    return len((yield from fetch_all(text("SELECT value FROM notes"), {})))


def count_plan() -> Plan[int]:
    return len((yield from fetch_all(text("SELECT value FROM notes"), {})))


async def test_operations_after_the_server_dropped_the_connections_run_on_new_ones(
    backend_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(backend_url)
    if db.backend == "sqlite":
        await db.aclose()
        pytest.skip("no server connection to drop")
    monkeypatch.setattr(connect, "PING_AFTER_IDLE_S", 3600.0)  # no ping: the statement finds it dead
    try:
        await db.write(lambda conn: conn.execute(text("CREATE TABLE notes (value VARCHAR(20))")))
        assert await db.write(add, "before") == 1
        assert db.write_sync(add, "before, sync") == 2

        assert kill_other_connections(db.url.sync_url.render_as_string(hide_password=False), db.backend) >= 2
        with caplog.at_level(logging.WARNING, logger="fathom.store.engine"):
            assert await db.write(add, "after") == 3  # written once, not twice
            assert await db.read(count) == 3
        assert "connection lost" in caplog.text and "trying once more" in caplog.text

        kill_other_connections(db.url.sync_url.render_as_string(hide_password=False), db.backend)
        assert db.write_sync(add, "after, sync") == 4
        assert db.read_sync(count) == 4

        # plans go on from the statement that found the connection dead
        kill_other_connections(db.url.sync_url.render_as_string(hide_password=False), db.backend)
        assert await db.write_plan(add_plan("plan")) == 5
        kill_other_connections(db.url.sync_url.render_as_string(hide_password=False), db.backend)
        assert await db.fetch(count_plan()) == 5
        kill_other_connections(db.url.sync_url.render_as_string(hide_password=False), db.backend)
        assert db.write_plan_sync(add_plan("plan, sync")) == 6
        assert db.fetch_sync(count_plan()) == 6
    finally:
        await db.aclose()


async def test_a_failing_statement_is_not_run_twice(backend_url: str) -> None:
    """Only a lost connection earns another try; an error of the statement itself surfaces at once."""
    db = Database(backend_url)
    calls = []

    def broken(conn: Connection) -> None:
        calls.append(1)
        conn.execute(text("SELECT * FROM no_such_table"))

    try:
        with pytest.raises(StoreError, match=r"no_such_table|no such table"):
            await db.write(broken)
        assert calls == [1]
    finally:
        await db.aclose()
