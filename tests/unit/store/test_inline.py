"""SQLite statements on Fathom's own event loop: no thread hop, and never a wait for a lock.

Each scenario runs through :func:`fathom.aio.run_own_loop`, as Fathom's commands do; on any
other loop (a host's, the test runner's) the statements go to worker threads as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select, text

from fathom.aio import run_own_loop
from fathom.store import Database, engine, inline
from fathom.store.errors import StoreError
from fathom.store.migrations import runs
from fathom.store.plans import execute, fetch_all


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


def _reads(*run_ids: str) -> Any:
    """A read plan of one SELECT per run: (run id, thread that ran the plan's code) each."""
    seen = []
    for run_id in run_ids:
        rows = yield from fetch_all(select(runs.c.run_id).where(runs.c.run_id == run_id), {})
        seen.append((rows[0][0], threading.get_ident()))
    return seen


async def _stored(db: Database) -> set[str]:
    return await db.read(lambda conn: set(conn.execute(select(runs.c.run_id)).scalars()))


def _on_database(path: Path, scenario: Callable[[Database], Awaitable[None]], *, own_loop: bool = True) -> None:
    async def main() -> None:
        db = Database(f"sqlite:///{path}")
        try:
            await db.setup()
            await scenario(db)
        finally:
            await db.aclose()

    if own_loop:
        run_own_loop(main())
    else:
        asyncio.run(main())


def test_on_fathoms_loop_writes_and_reads_run_on_the_loop_thread(tmp_path: Path) -> None:
    async def scenario(db: Database) -> None:
        loop_thread = threading.get_ident()
        assert await db.write(_insert, "a") == loop_thread
        assert await db.write_plan(_insert_plan("b")) == loop_thread
        assert await db.fetch(_reads("a", "b")) == [("a", loop_thread), ("b", loop_thread)]
        assert await db.read(lambda conn: threading.get_ident()) == loop_thread
        assert await _stored(db) == {"a", "b"}

    _on_database(tmp_path / "own.db", scenario)


def test_on_a_host_loop_nothing_blocks_the_loop(tmp_path: Path) -> None:
    """An app embedding Fathom, or LangGraph's dev server (which fails blocking calls on its
    loop), gets every statement on a worker thread."""

    async def scenario(db: Database) -> None:
        loop_thread = threading.get_ident()
        assert await db.write(_insert, "a") != loop_thread
        assert await db.write_plan(_insert_plan("b")) != loop_thread
        assert {thread for _, thread in await db.fetch(_reads("a", "b"))} != {loop_thread}
        assert await db.read(lambda conn: threading.get_ident()) != loop_thread

    _on_database(tmp_path / "host.db", scenario, own_loop=False)


def test_switched_off_every_statement_takes_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "STATEMENTS_ON_LOOP", False)

    async def scenario(db: Database) -> None:
        loop_thread = threading.get_ident()
        assert await db.write(_insert, "a") != loop_thread
        assert await db.write_plan(_insert_plan("b")) != loop_thread
        assert await db.read(lambda conn: threading.get_ident()) != loop_thread
        assert await _stored(db) == {"a", "b"}

    _on_database(tmp_path / "off.db", scenario)


@pytest.mark.parametrize("kind", ["write", "plan"])
def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path, kind: str) -> None:
    """Another connection (as another process would) holds the write lock for 0.5 s: the write
    lands once it is released, from a worker thread, while the loop keeps ticking."""
    path = tmp_path / "locked.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def scenario(db: Database) -> None:
        await db.write(_insert, "warm")  # the loop's connection is open before the lock is taken
        assert await _stored(db) == {"warm"}  # a read on it leaves its writes taking the lock first
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

    try:
        _on_database(path, scenario)
    finally:
        other.close()


def test_a_failed_write_rolls_back_and_the_next_one_lands(tmp_path: Path) -> None:
    def half(conn: Connection) -> None:
        _insert(conn, "half")
        raise RuntimeError("failed after writing")

    async def scenario(db: Database) -> None:
        with pytest.raises(RuntimeError, match="failed after writing"):
            await db.write(half)
        with pytest.raises(StoreError, match="UNIQUE|unique"):
            await db.write(lambda conn: [_insert(conn, "dup"), _insert(conn, "dup")])
        with pytest.raises(StoreError, match="UNIQUE|unique"):
            await db.write_plan(_twice("dup2"))
        assert await db.write(_insert, "next") == threading.get_ident()
        assert await _stored(db) == {"next"}

    _on_database(tmp_path / "failed.db", scenario)


def _twice(run_id: str) -> Any:
    yield from _insert_plan(run_id)
    yield from _insert_plan(run_id)


def test_the_no_wait_connection_never_goes_back_to_the_pool(tmp_path: Path) -> None:
    """The loop's connection has a busy timeout of 0; closed, it must not be handed to a thread
    writer, which would then fail at once instead of waiting for the lock."""

    async def scenario(db: Database) -> None:
        await db.write(_insert, "a")  # the sync pool's only connection so far is the loop's
        assert db._loop_conn is not None
        db._loop_conn.close()
        with db.sync_engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000

    _on_database(tmp_path / "pool.db", scenario)


def test_a_read_plan_that_finds_the_database_locked_goes_on_from_that_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read on the loop whose second statement answers SQLITE_BUSY (as while another process
    recovers the log) is not started over: the rest of it runs on a worker thread, and the
    caller gets the same result as an undisturbed read."""
    statements = 0
    run_step = inline.run_step_sqlite

    def busy_once(conn: Any, step: Any) -> Any:
        nonlocal statements
        statements += 1
        if statements == 2:
            locked = sqlite3.OperationalError("database is locked")
            locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise locked
        return run_step(conn, step)

    async def scenario(db: Database) -> None:
        for run_id in ("a", "b", "c"):
            await db.write(_insert, run_id)
        monkeypatch.setattr(inline, "run_step_sqlite", busy_once)
        disturbed = await db.fetch(_reads("a", "b", "c"))
        assert [run_id for run_id, _ in disturbed] == ["a", "b", "c"]
        assert disturbed[0][1] == threading.get_ident()
        assert threading.get_ident() not in {thread for _, thread in disturbed[1:]}
        assert statements == 2  # the statement that found the lock was not run again on the loop

    _on_database(tmp_path / "busy.db", scenario)


def test_thirty_two_writers_in_threads_and_on_the_loop_lose_nothing(tmp_path: Path) -> None:
    """Half the writers are threads of this process (sync writes, holding the write lock in
    turn), half are tasks on the loop: every row lands, none twice, none blocked for good."""

    async def scenario(db: Database) -> None:
        def in_thread(i: int) -> None:
            for j in range(10):
                db.write_sync(_insert, f"t{i}-{j}")

        async def on_loop(i: int) -> None:
            for j in range(10):
                await (db.write(_insert, f"l{i}-{j}") if j % 2 else db.write_plan(_insert_plan(f"l{i}-{j}")))

        await asyncio.gather(*(asyncio.to_thread(in_thread, i) for i in range(16)), *(on_loop(i) for i in range(16)))
        want = {f"{kind}{i}-{j}" for kind in "tl" for i in range(16) for j in range(10)}
        assert await _stored(db) == want

    _on_database(tmp_path / "mixed.db", scenario)
