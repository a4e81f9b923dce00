"""Many concurrent runs writing one SQLite file: nothing locked, nothing lost."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import func, select, text

from fathom.checkpoints import SQLSaver
from fathom.checkpoints.schema import checkpoints, writes
from tests.test_checkpoint_support import research_graph, research_input, run_config

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
