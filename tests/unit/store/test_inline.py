"""SQLite writes on the event loop: they never make the loop wait for another writer's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select, text

from fathom.store import Database
from fathom.store.errors import StoreError
from fathom.store.migrations import runs
from fathom.store.plans import execute


def _row(run_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"run_id": run_id, "question": "q", "options": {}, "endpoints": {}, "status": "running",
            "created_at": now, "updated_at": now, "rounds": 0, "answer": None, "report": None, "error": None}


def _insert(conn: Connection, run_id: str) -> int:
    conn.execute(insert(runs), _row(run_id))
    return threading.get_ident()


def _insert_plan(run_id: str) -> Any:
    yield from execute(insert(runs), _row(run_id))
    return threading.get_ident()


async def _stored(db: Database) -> set[str]:
    return await db.read(lambda conn: set(conn.execute(select(runs.c.run_id)).scalars()))


async def test_uncontended_writes_run_on_the_loop_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/inline.db")
    try:
        await db.setup()
        assert await db.write(_insert, "a") == threading.get_ident()
        assert await db.write_plan(_insert_plan("b")) == threading.get_ident()
        assert await _stored(db) == {"a", "b"}
    finally:
        await db.aclose()


@pytest.mark.parametrize("kind", ["write", "plan"])
async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path, kind: str) -> None:
    """Another connection (as another process would) holds the write lock for 0.5 s: the write
    lands once it is released, from a worker thread, while the loop keeps ticking."""
    path = tmp_path / "locked.db"
    db = Database(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await db.setup()
        await db.write(_insert, "warm")  # the loop's connection is open before the lock is taken
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        asyncio.get_running_loop().call_later(0.5, other.execute, "COMMIT")
        thread = await (db.write(_insert, "a") if kind == "write" else db.write_plan(_insert_plan("a")))
        ticker.cancel()
        assert thread != threading.get_ident()
        assert ticks >= 20, f"the loop ticked {ticks} times in 0.5 s: it waited on the lock"
        assert await _stored(db) == {"warm", "a"}
        assert await db.write(_insert, "b") == threading.get_ident()  # back on the loop once free
    finally:
        other.close()
        await db.aclose()


async def test_a_failed_write_rolls_back_and_the_next_one_lands(tmp_path: Path) -> None:
    def half(conn: Connection) -> None:
        _insert(conn, "half")
        raise RuntimeError("failed after writing")

    db = Database(f"sqlite:///{tmp_path}/failed.db")
    try:
        await db.setup()
        with pytest.raises(RuntimeError, match="failed after writing"):
            await db.write(half)
        with pytest.raises(StoreError, match="UNIQUE|unique"):
            await db.write(lambda conn: [_insert(conn, "dup"), _insert(conn, "dup")])
        assert await db.write(_insert, "next") == threading.get_ident()
        assert await _stored(db) == {"next"}
    finally:
        await db.aclose()


async def test_the_no_wait_connection_never_goes_back_to_the_pool(tmp_path: Path) -> None:
    """The loop's connection has a busy timeout of 0; closed, it must not be handed to a thread
    writer, which would then fail at once instead of waiting for the lock."""
    db = Database(f"sqlite:///{tmp_path}/pool.db")
    try:
        await db.setup()
        await db.write(_insert, "a")  # the sync pool's only connection so far is the loop's
        assert db._loop_writer is not None
        db._loop_writer.close()
        with db.sync_engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    finally:
        await db.aclose()
