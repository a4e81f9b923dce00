"""Shared fixtures and graphs for the checkpoint tests (no tests of its own).

Every database is real: SQLite in ``tmp_path`` always, PostgreSQL and MariaDB/MySQL when
reachable (``FATHOM_TEST_PG_URL`` / ``FATHOM_TEST_MYSQL_URL``, default 127.0.0.1), otherwise
the test is skipped with the reason. Each test gets its own scratch database, dropped after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from fathom.store import SQLSaver
from fathom.store.checkpoints.testing import ServerBackend, scratch_database, server_url

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


def server(backend: ServerBackend) -> str:
    """The server URL for ``backend``, or skip the test saying why it is unreachable."""
    if backend not in _servers:
        _servers[backend] = server_url(backend)
    url, why = _servers[backend]
    if url is None:
        pytest.skip(f"{backend} not reachable: {why}")
    return url


_servers: dict[str, tuple[str | None, str]] = {}  # probed once per session


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A URL of an empty database, once per backend (import this fixture to use it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fathom.db"
        return
    with scratch_database(server(request.param)) as url:
        yield url


@pytest.fixture
async def saver(backend_url: str) -> AsyncIterator[SQLSaver]:
    """An open saver on :func:`backend_url`."""
    async with SQLSaver.from_url(backend_url) as opened:
        yield opened


class SyncPathSaver(SQLSaver):
    """Routes every async method through its sync twin in a worker thread.

    The conformance suite only calls async methods; this adapter makes it exercise the sync
    engine and the sync code path, from threads, as LangGraph's ``invoke`` does.
    """

    async def aget_tuple(self, config: Any) -> Any:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        for item in await asyncio.to_thread(lambda: list(self.list(config, **kwargs))):
            yield item

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self.put, *args, **kwargs)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.put_writes, *args, **kwargs)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Any) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


# ---- a research-shaped graph: a transcript that grows every round ---------------------------


class ResearchState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    rounds: int
    budget: int
    status: str


def research_round(state: ResearchState) -> dict[str, Any]:
    """One scripted round: the model 'thinks and calls a tool', the tool returns a page."""
    r = state["rounds"] + 1
    return {
        "messages": [
            AIMessage(f"round {r}: searching for evidence " * 8, id=f"ai-{r}"),
            ToolMessage(f"page {r} " + "lorem ipsum " * 200, tool_call_id=f"call-{r}", id=f"tool-{r}"),
        ],
        "rounds": r,
        "status": "done" if r >= state["budget"] else "running",
    }


def research_graph() -> StateGraph:
    builder = StateGraph(ResearchState)
    builder.add_node("research", research_round)
    builder.add_edge(START, "research")
    builder.add_conditional_edges("research", lambda s: END if s["status"] == "done" else "research")
    return builder


def research_input(budget: int, question: str = "what is fathom?") -> dict[str, Any]:
    return {"messages": [HumanMessage(question, id="q")], "rounds": 0, "budget": budget, "status": "running"}


def run_config(thread_id: str, run_id: str | None = None) -> dict[str, Any]:
    """Config of a run on ``thread_id``. Continuing a thread with new input needs a new
    ``run_id``: LangGraph treats the same run id as re-entering the run and ignores the input."""
    return {
        "configurable": {"thread_id": thread_id},
        "metadata": {"run_id": run_id or thread_id},
        "recursion_limit": 1000,
    }
