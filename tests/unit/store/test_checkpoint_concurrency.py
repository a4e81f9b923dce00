"""Many concurrent runs writing one SQLite file: nothing locked, nothing lost, nothing left open."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import func, select, text

from fathom.store import SQLSaver, plans
from fathom.store.migrations import blobs, checkpoints, writes
from tests.support.checkpoints import research_graph, research_input, run_config

WRITERS = 32
ROUNDS = 5


async def rows_per_thread(saver: SQLSaver, table: Any) -> dict[str, int]:
    stmt = select(table.c.thread_id, func.count()).group_by(table.c.thread_id)
    async with saver.db.engine.connect() as conn:
        return dict((await conn.execute(stmt)).all())


@pytest.mark.parametrize("mode", ["threads", "tasks", "mixed"])
async def test_concurrent_writers_on_one_sqlite_file(tmp_path: Path, mode: str) -> None:
    """32 runs at once (sync ``invoke`` in threads, ``ainvoke`` tasks, or half each) all finish
    with exactly the checkpoints and writes a lone run stores."""
    async with SQLSaver.from_url(f"sqlite:///{tmp_path}/shared.db") as saver:
        graph = research_graph().compile(checkpointer=saver)
        threaded = [mode == "threads" or (mode == "mixed" and i % 2 == 0) for i in range(WRITERS)]
        start = threading.Barrier(max(sum(threaded), 1), timeout=60)  # all threads write at once

        def in_thread(thread_id: str) -> None:
            start.wait()
            graph.invoke(research_input(ROUNDS), run_config(thread_id), durability="sync")

        async def as_task(thread_id: str) -> None:
            await graph.ainvoke(research_input(ROUNDS), run_config(thread_id), durability="sync")

        names = [f"writer-{i:02d}" for i in range(WRITERS)]
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:  # the default pool is too small
            jobs = [
                loop.run_in_executor(pool, in_thread, name) if in_a_thread else as_task(name)
                for name, in_a_thread in zip(names, threaded, strict=True)
            ]
            await asyncio.gather(*jobs)  # any "database is locked" would surface here

        async with SQLSaver.from_url(f"sqlite:///{tmp_path}/alone.db") as alone:
            await (
                research_graph()
                .compile(checkpointer=alone)
                .ainvoke(research_input(ROUNDS), run_config("alone"), durability="sync")
            )
            expected = (
                (await rows_per_thread(alone, checkpoints))["alone"],
                (await rows_per_thread(alone, writes))["alone"],
            )
        assert await rows_per_thread(saver, checkpoints) == dict.fromkeys(names, expected[0])
        assert await rows_per_thread(saver, writes) == dict.fromkeys(names, expected[1])

        reference = research_graph().compile(checkpointer=InMemorySaver())
        await reference.ainvoke(research_input(ROUNDS), run_config("ref"), durability="sync")
        want = [s.values async for s in reference.aget_state_history(run_config("ref"))]
        for name in names:
            assert [s.values async for s in graph.aget_state_history(run_config(name))] == want

        async with saver.db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


@pytest.mark.parametrize(
    ("failure", "round_trips"),
    [("error", "one per put"), ("error", "one per statement"), ("cancel", "one per statement")],
)
async def test_a_failed_or_cancelled_put_rolls_back_and_releases_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, round_trips: str
) -> None:
    """Async puts on SQLite share one kept writer connection: a put that fails, or is cancelled
    half way through sending its statements, must roll back, leaving no rows and no open
    transaction for the next writer. (With one round trip per put the statements are sent at
    once, so only the fallback for aiosqlite versions without it can be cancelled half way.)"""
    if round_trips == "one per statement":
        monkeypatch.setattr(plans, "connection_thread", lambda conn: None)
    async with SQLSaver.from_url(f"sqlite:///{tmp_path}/rollback.db") as saver:
        put_rows = SQLSaver._put_rows

        def interrupted(self: SQLSaver, prepared: Any) -> Any:
            if failure == "cancel":
                asyncio.current_task().cancel()  # delivered at the first statement's await
                return (yield from put_rows(self, prepared))
            yield from put_rows(self, prepared)  # every statement ran, then the put fails
            raise RuntimeError("failed after writing")

        monkeypatch.setattr(SQLSaver, "_put_rows", interrupted)
        lost = asyncio.create_task(saver.aput(_config("lost"), *_checkpoint(saver, ["a", "b"])))
        with pytest.raises(asyncio.CancelledError if failure == "cancel" else RuntimeError):
            await lost
        monkeypatch.setattr(SQLSaver, "_put_rows", put_rows)

        assert await saver.aget_tuple(_config("lost")) is None
        assert "lost" not in await rows_per_thread(saver, blobs)
        await _next_writers_succeed(saver)


async def test_a_put_cancelled_while_its_transaction_runs_stores_all_or_nothing(tmp_path: Path) -> None:
    """A caller cancelled while its put's transaction runs on aiosqlite's thread gets
    CancelledError once that transaction has ended (committed whole here: it was past the
    point of no return), so the next writers find the lock free and no transaction open."""
    async with SQLSaver.from_url(f"sqlite:///{tmp_path}/cancel.db") as saver:
        put_rows = SQLSaver._put_rows
        running, release = threading.Event(), threading.Event()

        def slow(self: SQLSaver, prepared: Any) -> Any:
            running.set()  # on the connection's thread, inside BEGIN IMMEDIATE
            release.wait(30)
            return (yield from put_rows(self, prepared))

        SQLSaver._put_rows = slow  # type: ignore[method-assign]
        try:
            put = asyncio.create_task(saver.aput(_config("cancelled"), *_checkpoint(saver, ["a", "b"])))
            assert await asyncio.to_thread(running.wait, 30)
            put.cancel()
            done, _ = await asyncio.wait([put], timeout=0.5)
            assert not done, "the cancelled put returned while its transaction was still open"
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(put, 30)
        finally:
            release.set()
            SQLSaver._put_rows = put_rows  # type: ignore[method-assign]

        await _next_writers_succeed(saver)  # queued behind the cancelled put's transaction
        loaded = await saver.aget_tuple(_config("cancelled"))
        assert loaded is not None and loaded.checkpoint["channel_values"]["messages"] == ["a", "b"]


async def _next_writers_succeed(saver: SQLSaver) -> None:
    saver.put(_config("sync"), *_checkpoint(saver, ["c"]))  # another connection takes the lock
    await saver.aput(_config("async"), *_checkpoint(saver, ["d"]))  # so does the kept one
    for thread_id, value in (("sync", ["c"]), ("async", ["d"])):
        loaded = await saver.aget_tuple(_config(thread_id))
        assert loaded is not None and loaded.checkpoint["channel_values"]["messages"] == value


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _checkpoint(saver: SQLSaver, messages: list[str]) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """(checkpoint, metadata, new_versions) of a first checkpoint holding a list channel."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": messages}
    checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
    return checkpoint, {"source": "input", "step": -1}, dict(checkpoint["channel_versions"])


async def test_concurrent_sqlite_writes_share_transactions_and_a_failing_one_is_undone_alone(tmp_path: Path) -> None:
    """Writes queued while the writer is busy commit together (a group commit), each in its own
    savepoint: 48 concurrent writes all land in fewer transactions than writes, and the one that
    fails half way leaves nothing while its neighbours in the same transaction commit."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from fathom.store import Database
    from fathom.store.migrations import runs
    from fathom.store.plans import execute

    def record(run_id: str, *, fail_after: bool = False) -> Any:
        now = datetime.now(UTC)
        yield from execute(insert(runs), {"run_id": run_id, "question": "q", "options": {}, "endpoints": {},
                                          "status": "running", "created_at": now, "updated_at": now, "rounds": 0,
                                          "answer": None, "report": None, "error": None})
        if fail_after:
            raise RuntimeError("failed after writing")
        return run_id

    db = Database(f"sqlite:///{tmp_path}/group.db")
    try:
        await db.setup()
        commits = 0
        committed = db._committed

        def count() -> None:
            nonlocal commits
            commits += 1
            committed()

        db._committed = count  # type: ignore[method-assign]
        results = await asyncio.gather(
            *(db.write_plan(record(f"run-{i}", fail_after=i == 7)) for i in range(48)), return_exceptions=True
        )
        assert [r for r in results if isinstance(r, BaseException)] and isinstance(results[7], RuntimeError)
        assert [r for i, r in enumerate(results) if i != 7] == [f"run-{i}" for i in range(48) if i != 7]
        stored = await db.read(lambda conn: set(conn.execute(select(runs.c.run_id)).scalars()))
        assert stored == {f"run-{i}" for i in range(48) if i != 7}
        assert 1 <= commits < 48  # shared transactions
        assert await db.write_plan(record("after")) == "after"  # the writer is free again
    finally:
        await db.aclose()


async def test_a_flusher_cancelled_before_it_runs_leaves_no_writer_waiting(tmp_path: Path) -> None:
    """As ``asyncio.run`` ends (Ctrl-C) it cancels every task, a group commit's flusher maybe
    before it ever ran: the write it was to carry fails with CancelledError, it does not wait
    forever, and the next write finds the writer free."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from fathom.store import Database
    from fathom.store.migrations import runs
    from fathom.store.plans import execute

    def record(run_id: str) -> Any:
        now = datetime.now(UTC)
        yield from execute(insert(runs), {"run_id": run_id, "question": "q", "options": {}, "endpoints": {},
                                          "status": "running", "created_at": now, "updated_at": now, "rounds": 0,
                                          "answer": None, "report": None, "error": None})
        return run_id

    db = Database(f"sqlite:///{tmp_path}/shutdown.db")
    try:
        await db.setup()
        put = asyncio.create_task(db.write_plan(record("lost")))
        await asyncio.sleep(0)  # the put has queued its plan and started a flusher, not yet run
        assert db._plan_flusher is not None and not db._plan_flusher.done()
        db._plan_flusher.cancel()
        finished, _ = await asyncio.wait([put], timeout=10)
        if not finished:
            for _, waiting in db._queued_plans:  # let the stuck put end before failing
                waiting.cancel()
            pytest.fail("the write still waits for a flusher that never ran")
        with pytest.raises(asyncio.CancelledError):
            await put
        assert await db.write_plan(record("next")) == "next"
        stored = await db.read(lambda conn: set(conn.execute(select(runs.c.run_id)).scalars()))
        assert stored == {"next"}
    finally:
        await db.aclose()
