"""Storage and latency of Fathom's SQLSaver against LangGraph's official savers, side by side.

A scripted 64-round research loop (each round appends an AIMessage of a few hundred characters
and a ToolMessage of 2-4 KB to ``messages`` and updates two scalar channels) runs through each
saver with ``durability="sync"``. For each saver it prints the bytes stored (value payloads, and
the database's size on disk) divided by the bytes of the final state, and the latency of ``aput``
and ``aget_tuple`` at rounds 1, 16 and 64 as ours / official (medians; the gets of the two savers
take turns, so both see the same background load). It prints, it asserts nothing.

    .venv/bin/python bench/checkpoint_storage.py [--rounds 64] [--reps 5] [--no-postgres]

PostgreSQL is compared when reachable (FATHOM_TEST_PG_URL, default 127.0.0.1:5432/test) and
``langgraph-checkpoint-postgres`` is installed; each saver gets a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.store import SQLSaver
from fathom.store.checkpoints.testing import scratch_database, server_url
from fathom.store.urls import resolve_url

MEASURED_ROUNDS = (1, 16, 64)
GET_REPEATS = 41


# ---- the workload ----------------------------------------------------------------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    round: int
    status: str
    budget: int


WORDS = "evidence bridge opened heritage council tram river archive source page report 1897 june".split()  # noqa: SIM905


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < size:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def research_round(state: State) -> dict[str, Any]:
    r = state["round"] + 1
    rng = random.Random(r)  # the same transcript for every saver
    return {
        "messages": [
            AIMessage(
                _text(rng, 300),
                id=f"ai-{r}",
                tool_calls=[
                    {"name": "query_url", "args": {"url": f"https://example.org/{r}"}, "id": f"call-{r}"}
                ],
            ),
            ToolMessage(_text(rng, rng.randint(2048, 4096)), tool_call_id=f"call-{r}", id=f"tool-{r}"),
        ],
        "round": r,
        "status": "done" if r >= state["budget"] else "searching",
    }


def build_graph() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("research", research_round)
    builder.add_edge(START, "research")
    builder.add_conditional_edges("research", lambda s: END if s["status"] == "done" else "research")
    return builder


# ---- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    put_ms: dict[int, float] = field(default_factory=dict)
    get_ms: dict[int, float] = field(default_factory=dict)
    payload_bytes: float = 0.0
    disk_bytes: float = 0.0
    final_state_bytes: int = 0


def _timed_puts(saver: BaseCheckpointSaver, samples: dict[int, list[float]]) -> None:
    """Record how long each ``aput`` takes, keyed by the checkpoint's step (= round)."""
    original = saver.aput

    async def aput(config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        start = time.perf_counter()
        try:
            return await original(config, checkpoint, metadata, new_versions)
        finally:
            samples[metadata.get("step", -1)].append(time.perf_counter() - start)

    saver.aput = aput  # type: ignore[method-assign]


async def run_saver(
    label: str, saver: BaseCheckpointSaver, rounds: int, reps: int, measure_size: Callable[[], Any]
) -> Result:
    """Run the workload ``reps`` times; record put latencies and storage."""
    graph = build_graph().compile(checkpointer=saver)
    samples: dict[int, list[float]] = defaultdict(list)
    _timed_puts(saver, samples)
    final: dict[str, Any] = {}
    for rep in range(reps):
        config = {"configurable": {"thread_id": f"bench-{rep}"}, "recursion_limit": 4 * rounds + 10}
        start = {
            "messages": [HumanMessage("When did the Kestrel Bridge open?", id="q")],
            "round": 0,
            "status": "searching",
            "budget": rounds,
        }
        final = await graph.ainvoke(start, config, durability="sync")
    result = Result(label)
    result.put_ms = {r: 1000 * statistics.median(samples[r]) for r in MEASURED_ROUNDS if samples.get(r)}
    payload, disk = await measure_size()
    result.payload_bytes, result.disk_bytes = payload / reps, disk / reps
    result.final_state_bytes = len(JsonPlusSerializer().dumps_typed(final)[1])
    return result


async def time_gets(pairs: list[tuple[Result, BaseCheckpointSaver]]) -> None:
    """Time ``aget_tuple`` of each saver's checkpoint at the measured rounds, taking turns.

    Alternating the savers call by call (rather than timing one, then the other) exposes both
    to the same background load, which on a shared machine moves single calls by more than
    the difference being measured.
    """
    thread = {"configurable": {"thread_id": "bench-0", "checkpoint_ns": ""}}
    for r in MEASURED_ROUNDS:
        targets = []
        for _, saver in pairs:
            found = [t async for t in saver.alist(thread, filter={"step": r}, limit=1)]
            targets.append(found[0].config if found else None)
        if None in targets:
            continue
        times: list[list[float]] = [[] for _ in pairs]
        for i in range(GET_REPEATS * len(pairs)):
            k = (i + i // len(pairs)) % len(pairs)  # vary who goes first, too
            begin = time.perf_counter()
            await pairs[k][1].aget_tuple(targets[k])
            times[k].append(time.perf_counter() - begin)
        for (result, _), samples in zip(pairs, times, strict=True):
            result.get_ms[r] = 1000 * statistics.median(samples)


def _payload_sql(table: str, columns: list[str], length: str) -> str:
    """SQL summing the byte lengths of ``columns`` over ``table``."""
    total = " + ".join(f"coalesce({length}({c}), 0)" for c in columns)
    return f"SELECT coalesce(sum({total}), 0) FROM {table}"


def sqlite_sizes(path: Path, columns: dict[str, list[str]]) -> Callable[[], Any]:
    async def measure() -> tuple[int, int]:
        engine = create_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # count the WAL's pages in the file
            payload = sum(
                conn.execute(text(_payload_sql(table, cols, "length"))).scalar_one()
                for table, cols in columns.items()
            )
        engine.dispose()
        return payload, path.stat().st_size

    return measure


def postgres_sizes(url: str, columns: dict[str, list[str]]) -> Callable[[], Any]:
    async def measure() -> tuple[int, int]:
        engine = create_engine(resolve_url(url).sync_url)
        with engine.connect() as conn:
            payload = sum(
                conn.execute(text(_payload_sql(table, cols, "octet_length"))).scalar_one()
                for table, cols in columns.items()
            )
            disk = sum(
                conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
                for table in columns
            )
        engine.dispose()
        return int(payload), int(disk)

    return measure


OURS_COLUMNS = {
    "fathom_checkpoints": ["checkpoint", "CAST(metadata AS TEXT)"],
    "fathom_blobs": ["blob"],
    "fathom_writes": ["blob"],
}
SQLITE_COLUMNS = {"checkpoints": ["checkpoint", "metadata"], "writes": ["value"]}
POSTGRES_COLUMNS = {
    "checkpoints": ["CAST(checkpoint AS TEXT)", "CAST(metadata AS TEXT)"],
    "checkpoint_blobs": ["blob"],
    "checkpoint_writes": ["blob"],
}


@asynccontextmanager
async def official_sqlite(path: Path) -> AsyncIterator[AsyncSqliteSaver]:
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.setup()
        yield saver


@asynccontextmanager
async def official_postgres(url: str) -> AsyncIterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.setup()
        yield saver


async def compare(
    backend: str,
    ours: AbstractAsyncContextManager[BaseCheckpointSaver],
    ours_size: Callable[[], Any],
    official: AbstractAsyncContextManager[BaseCheckpointSaver],
    official_size: Callable[[], Any],
    official_name: str,
    args: argparse.Namespace,
) -> None:
    async with ours as our_saver, official as their_saver:
        mine = await run_saver("SQLSaver (fathom)", our_saver, args.rounds, args.reps, ours_size)
        theirs = await run_saver(official_name, their_saver, args.rounds, args.reps, official_size)
        await time_gets([(mine, our_saver), (theirs, their_saver)])
    report(backend, mine, theirs)


def report(backend: str, mine: Result, theirs: Result) -> None:
    kb = 1024
    print(f"\n== {backend}: {mine.label} vs {theirs.label}")
    print(
        f"{'saver':<22}{'stored':>11}{'on disk':>11}{'final state':>13}{'stored/final':>14}{'disk/final':>12}"
    )
    for r in (mine, theirs):
        sizes = (
            f"{r.payload_bytes / kb:>9.0f}KB{r.disk_bytes / kb:>9.0f}KB{r.final_state_bytes / kb:>11.0f}KB"
        )
        ratios = f"{r.payload_bytes / r.final_state_bytes:>14.2f}{r.disk_bytes / r.final_state_bytes:>12.2f}"
        print(f"{r.label:<22}{sizes}{ratios}")
    print(f"{'latency (median)':<22}" + "".join(f"{'round ' + str(r):>22}" for r in MEASURED_ROUNDS))
    for name, ours_ms, theirs_ms in (
        ("put", mine.put_ms, theirs.put_ms),
        ("get", mine.get_ms, theirs.get_ms),
    ):
        cells = []
        for r in MEASURED_ROUNDS:
            if r in ours_ms and r in theirs_ms:
                cells.append(f"{ours_ms[r]:.2f}/{theirs_ms[r]:.2f}ms = {ours_ms[r] / theirs_ms[r]:.2f}")
            else:
                cells.append("n/a")
        print(f"{name + ' ours/official':<22}" + "".join(f"{c:>22}" for c in cells))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5, help="runs per saver (latencies are medians)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.rounds} rounds x {args.reps} runs per saver; each round adds an AIMessage (~300 B) and a "
        f"ToolMessage (2-4 KB). cpus={os.cpu_count()}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        ours_path, theirs_path = Path(tmp, "fathom.db"), Path(tmp, "official.db")
        await compare(
            "SQLite",
            SQLSaver.from_url(ours_path),
            sqlite_sizes(ours_path, OURS_COLUMNS),
            official_sqlite(theirs_path),
            sqlite_sizes(theirs_path, SQLITE_COLUMNS),
            "AsyncSqliteSaver",
            args,
        )

    if args.no_postgres:
        return
    url, why = server_url("postgresql")
    try:
        import langgraph.checkpoint.postgres.aio  # noqa: F401
    except ImportError:
        url, why = None, "langgraph-checkpoint-postgres is not installed"
    if url is None:
        print(f"\n== PostgreSQL skipped: {why}")
        return
    with (
        scratch_database(url, "fathom_bench") as ours_url,
        scratch_database(url, "fathom_bench") as theirs_url,
    ):
        plain = (
            resolve_url(theirs_url)
            .sync_url.set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        await compare(
            "PostgreSQL",
            SQLSaver.from_url(ours_url),
            postgres_sizes(ours_url, OURS_COLUMNS),
            official_postgres(plain),
            postgres_sizes(theirs_url, POSTGRES_COLUMNS),
            "AsyncPostgresSaver",
            args,
        )


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main())
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
