"""Opening databases: automatic versioned schema, clear errors, URL handling."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError

from fathom.store import (
    RUN_STATUSES,
    SCHEMA_VERSION,
    Database,
    SQLSaver,
    StoreError,
    default_db_url,
    open_store,
    resolve_url,
)
from fathom.store.migrations import MIGRATIONS, migrate, migrations, runs
from tests.support.checkpoints import backend_url

__all__ = ["backend_url"]  # fixture

FATHOM_TABLES = {"fathom_migrations", "fathom_checkpoints", "fathom_blobs", "fathom_writes", "fathom_runs",
                 "fathom_evals", "fathom_eval_items", "fathom_judgements"}


def tables_and_version(url: str) -> tuple[set[str], int | None]:
    engine = create_engine(resolve_url(url).sync_url)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            version = conn.scalar(select(migrations.c.v).order_by(migrations.c.v.desc())) if names else None
        return names, version
    finally:
        engine.dispose()


async def test_first_use_creates_the_schema(backend_url: str) -> None:
    async with SQLSaver.from_url(backend_url) as saver:
        assert await saver.aget_tuple({"configurable": {"thread_id": "none"}}) is None
    names, version = tables_and_version(backend_url)
    assert names >= FATHOM_TABLES and version == SCHEMA_VERSION


async def test_sync_first_use_creates_the_schema(backend_url: str) -> None:
    with SQLSaver.from_url(backend_url) as saver:
        assert list(saver.list(None)) == []
    assert tables_and_version(backend_url)[1] == SCHEMA_VERSION


async def test_an_older_database_is_upgraded(backend_url: str) -> None:
    """A database made by a Fathom that knew only the first migration opens and gains the rest."""
    engine = create_engine(resolve_url(backend_url).sync_url)
    with engine.begin() as conn:
        migrate(conn, MIGRATIONS[:1])
    engine.dispose()
    assert "fathom_runs" not in tables_and_version(backend_url)[0]

    db = Database(backend_url)
    await db.setup()
    await db.aclose()
    names, version = tables_and_version(backend_url)
    assert "fathom_runs" in names and version == SCHEMA_VERSION


async def test_a_version_6_database_gains_the_judgement_cache(backend_url: str) -> None:
    engine = create_engine(resolve_url(backend_url).sync_url)
    with engine.begin() as conn:
        migrate(conn, MIGRATIONS[:6])
    engine.dispose()
    names, version = tables_and_version(backend_url)
    assert version == 6 and "fathom_eval_items" in names and "fathom_judgements" not in names
    async with open_store(backend_url):
        pass
    names, version = tables_and_version(backend_url)
    assert "fathom_judgements" in names and version == SCHEMA_VERSION


async def test_old_run_statuses_are_renamed_and_the_new_ones_allowed(backend_url: str) -> None:
    """A registry written before the one status vocabulary ('done') reads as 'answered'; 'waiting'
    is accepted and the old word is refused from then on."""
    engine = create_engine(resolve_url(backend_url).sync_url)
    with engine.begin() as conn:
        migrate(conn, MIGRATIONS[:4])
        now = datetime.now(UTC)
        for run_id, status in (("old-done", "done"), ("old-failed", "failed"), ("old-interrupted", "interrupted")):
            conn.execute(
                insert(runs).values(
                    run_id=run_id, question="q", status=status, created_at=now, updated_at=now, rounds=3
                )
            )
    engine.dispose()

    async with open_store(backend_url) as store:
        assert (await store.runs.get("old-done")).status == "answered"  # type: ignore[union-attr]
        assert (await store.runs.get("old-failed")).status == "failed"  # type: ignore[union-attr]
        assert (await store.runs.get("old-interrupted")).status == "interrupted"  # type: ignore[union-attr]
        assert [r.run_id for r in await store.runs.list(status="answered")] == ["old-done"]
        assert (await store.runs.get("old-done")).rounds == 3  # type: ignore[union-attr]
        await store.runs.update("old-interrupted", status="waiting")
    assert tables_and_version(backend_url)[1] == SCHEMA_VERSION

    engine = create_engine(resolve_url(backend_url).sync_url)
    try:
        with pytest.raises(DBAPIError), engine.begin() as conn:  # MariaDB: an OperationalError
            conn.execute(update(runs).where(runs.c.run_id == "old-failed").values(status="done"))
        with engine.connect() as conn:
            assert "fathom_runs_created_at_idx" in {ix["name"] for ix in inspect(conn).get_indexes("fathom_runs")}
    finally:
        engine.dispose()


def test_the_status_vocabulary_is_defined_once() -> None:
    assert RUN_STATUSES == ("running", "waiting", "interrupted", "answered", "unanswered", "failed")


async def test_a_version_7_registry_keeps_its_runs_and_takes_unanswered(backend_url: str) -> None:
    engine = create_engine(resolve_url(backend_url).sync_url)
    with engine.begin() as conn:
        migrate(conn, MIGRATIONS[:7])
        now = datetime.now(UTC)
        conn.execute(insert(runs).values(run_id="kept", question="q", status="answered", created_at=now,
                                         updated_at=now, rounds=2, answer="1897"))
        with pytest.raises(DBAPIError), conn.begin_nested():  # not allowed before migration 8
            conn.execute(insert(runs).values(run_id="early", question="q", status="unanswered", created_at=now,
                                             updated_at=now, rounds=2))
    engine.dispose()

    async with open_store(backend_url) as store:
        kept = await store.runs.get("kept")
        assert kept is not None and kept.status == "answered" and kept.answer == "1897" and kept.rounds == 2
        await store.runs.create("stubborn", "q")
        await store.runs.update("stubborn", status="unanswered", error="the model kept calling tools")
        assert [r.run_id for r in await store.runs.list(status="unanswered")] == ["stubborn"]
    assert tables_and_version(backend_url)[1] == SCHEMA_VERSION == 9


async def test_a_newer_database_is_refused(backend_url: str) -> None:
    async with SQLSaver.from_url(backend_url):
        pass
    engine = create_engine(resolve_url(backend_url).sync_url)
    with engine.begin() as conn:
        conn.execute(insert(migrations).values(v=SCHEMA_VERSION + 1))
    engine.dispose()

    with pytest.raises(StoreError, match=r"newer than this Fathom supports") as caught:
        async with SQLSaver.from_url(backend_url):
            pass
    assert "\n" not in str(caught.value)


async def test_setup_is_safe_when_two_processes_open_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    savers = [SQLSaver.from_url(url) for _ in range(4)]
    await asyncio.gather(*(s.setup() for s in savers), *(asyncio.to_thread(s.db.setup_sync) for s in savers))
    for s in savers:
        await s.aclose()
    assert tables_and_version(url)[1] == SCHEMA_VERSION


# ---- errors a user sees ------------------------------------------------------------------------


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError) as caught:
        async with SQLSaver.from_url(f"sqlite:///{notes}"):
            pass
    assert "notes.txt" in str(caught.value) and "not a database" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert notes.read_text().startswith("these are my notes")


async def test_fathom_tables_without_migrations_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE fathom_checkpoints (x INTEGER)")
    with pytest.raises(StoreError, match="not a Fathom database"):
        async with SQLSaver.from_url(f"sqlite:///{path}"):
            pass


async def test_another_applications_sqlite_file_is_shared_politely(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cache (k TEXT PRIMARY KEY, v BLOB)")
    async with SQLSaver.from_url(f"sqlite:///{path}"):
        pass
    assert {"cache"} | FATHOM_TABLES <= tables_and_version(f"sqlite:///{path}")[0]


async def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        async with SQLSaver.from_url(f"sqlite:///{tmp_path}/no/such/dir/x.db"):
            pass


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/test", "mysql://root@127.0.0.1:1/test"])
async def test_unreachable_server(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        async with SQLSaver.from_url(url):
            pass
    message = str(caught.value)
    assert message.startswith("cannot open ") and "127.0.0.1:1" in message and "\n" not in message


def test_unreachable_server_on_the_sync_path() -> None:
    saver = SQLSaver.from_url("postgresql://postgres:secret@127.0.0.1:1/test")
    with pytest.raises(StoreError, match="cannot open"):
        saver.get_tuple({"configurable": {"thread_id": "x"}})  # first use sets the schema up


def test_passwords_stay_out_of_messages() -> None:
    with (
        pytest.raises(StoreError) as caught,
        SQLSaver.from_url("postgresql://postgres:hunter2@127.0.0.1:1/test"),
    ):
        pass
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


# ---- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "async_driver", "sync_driver"),
    [
        ("sqlite:///runs.db", "sqlite+aiosqlite", "sqlite+pysqlite"),
        ("runs.db", "sqlite+aiosqlite", "sqlite+pysqlite"),
        ("postgresql://u@h/db", "postgresql+psycopg", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg", "postgresql+psycopg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg", "postgresql+psycopg2"),
        ("mysql://u@h/db", "mysql+aiomysql", "mysql+pymysql"),
        ("mariadb://u@h/db", "mysql+aiomysql", "mysql+pymysql"),
        ("mysql+pymysql://u@h/db", "mysql+aiomysql", "mysql+pymysql"),
    ],
)
def test_user_urls_map_to_async_and_sync_drivers(url: str, async_driver: str, sync_driver: str) -> None:
    resolved = resolve_url(url)
    assert resolved.async_url.drivername == async_driver
    assert resolved.sync_url.drivername == sync_driver


def test_mysql_urls_talk_utf8mb4() -> None:
    assert resolve_url("mysql://u@h/db").async_url.query["charset"] == "utf8mb4"
    assert resolve_url("mysql://u@h/db?charset=latin1").async_url.query["charset"] == "latin1"


def test_sqlite_paths_expand_the_home_directory() -> None:
    assert resolve_url("sqlite:///~/runs.db").sync_url.database == str(Path.home() / "runs.db")


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "oracle://u@h/db", "", "://nothing", "postgresql://u:pw@h:port/db"],
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError):
        resolve_url(url)


def test_malformed_urls_do_not_echo_passwords() -> None:
    with pytest.raises(StoreError) as caught:
        resolve_url("postgresql://user:hunter2@host:port/db")
    assert "hunter2" not in str(caught.value)


def test_default_database_lives_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    url = default_db_url()
    assert url == f"sqlite:///{tmp_path}/data/fathom/checkpoints.db"
    assert (tmp_path / "data" / "fathom").is_dir()
