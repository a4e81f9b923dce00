"""The run registry, next to the checkpoints in the same database, on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from fathom.store import RunRegistry, StoreError, UnknownRunError, open_store
from tests.support.checkpoints import (
    backend_url,
    research_graph,
    research_input,
    run_config,
)

__all__ = ["backend_url"]  # fixture


async def test_a_run_is_recorded_updated_and_read_back(backend_url: str) -> None:
    async with open_store(backend_url) as store:
        created = await store.runs.create(
            "run-1",
            "When did the Kestrel Bridge open?",
            options={"max_rounds": 64, "search_backend": "searxng"},
            endpoints={"search": "http://127.0.0.1:8902"},
        )
        assert created.status == "running" and created.rounds == 0
        assert created.created_at == created.updated_at
        assert created.created_at.tzinfo is not None
        assert abs(created.created_at - datetime.now(UTC)) < timedelta(minutes=1)

        await asyncio.sleep(0.01)
        report = "# Kestrel Bridge\n" + "A paragraph with a citation [1].\n" * 5000  # > 64 KiB
        done = await store.runs.update("run-1", status="answered", rounds=3, answer="1897", report=report)

        again = await store.runs.get("run-1")
        assert again == done
        assert (again.status, again.rounds, again.answer, again.report) == ("answered", 3, "1897", report)
        assert again.options == {"max_rounds": 64, "search_backend": "searxng"}
        assert again.endpoints == {"search": "http://127.0.0.1:8902"}
        assert again.created_at == created.created_at and again.updated_at > created.updated_at
        assert await store.runs.get("no-such-run") is None


async def test_runs_are_listed_newest_first(backend_url: str) -> None:
    async with open_store(backend_url) as store:
        for i in range(5):
            await store.runs.create(f"run-{i}", f"question {i}")
            await asyncio.sleep(0.002)
        await store.runs.update("run-1", status="failed", error="search backend unreachable")
        await store.runs.update("run-3", status="failed", error="model timed out")

        assert [r.run_id for r in await store.runs.list()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
        assert [r.run_id for r in await store.runs.list(limit=2)] == ["run-4", "run-3"]
        assert [r.run_id for r in await store.runs.list(status="failed")] == ["run-3", "run-1"]
        assert await store.runs.list(status="interrupted") == []


async def test_deleting_a_run_deletes_its_checkpoints(backend_url: str) -> None:
    async with open_store(backend_url) as store:
        graph = research_graph().compile(checkpointer=store.saver)
        for run_id in ("doomed", "kept"):
            await store.runs.create(run_id, "q")
            await graph.ainvoke(research_input(budget=2), run_config(run_id), durability="sync")

        assert await store.runs.delete("doomed") is True
        assert await store.runs.get("doomed") is None
        assert await store.saver.aget_tuple(run_config("doomed")) is None
        assert (await graph.aget_state(run_config("kept"))).values["rounds"] == 2
        assert await store.runs.get("kept") is not None
        assert await store.runs.delete("doomed") is False


async def test_mistakes_are_reported(backend_url: str) -> None:
    async with open_store(backend_url) as store:
        await store.runs.create("run-1", "q")
        with pytest.raises(StoreError, match="already recorded"):
            await store.runs.create("run-1", "q again")
        with pytest.raises(UnknownRunError, match="no-such-run"):
            await store.runs.update("no-such-run", status="answered")
        with pytest.raises(ValueError, match="unknown run status"):
            await store.runs.update("run-1", status="finished")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown run status"):
            await store.runs.create("run-2", "q", status="paused")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not a run field"):
            await store.runs.update("run-1", created_at=datetime.now(UTC))
        with pytest.raises(ValueError, match="rounds"):
            await store.runs.update("run-1", rounds=-1)
        assert (await store.runs.get("run-1")).status == "running"  # type: ignore[union-attr]


async def test_an_unchanged_update_still_succeeds(backend_url: str) -> None:
    """MySQL reports 0 affected rows when nothing changes; that is not an unknown run."""
    async with open_store(backend_url) as store:
        await store.runs.create("same", "q")
        await store.runs.update("same", status="running", rounds=0)
        assert (await store.runs.get("same")).status == "running"  # type: ignore[union-attr]


async def test_registry_and_saver_share_one_database(backend_url: str) -> None:
    async with open_store(backend_url) as store:
        assert store.saver.db is store.runs.db is store.db
        await store.runs.create("shared", "q")
    registry = RunRegistry(backend_url)  # a later process opening the same database
    try:
        assert (await registry.get("shared")) is not None
    finally:
        await registry.aclose()


async def test_open_store_reports_an_unusable_database(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        async with open_store("postgresql://postgres@127.0.0.1:1/test"):
            pass
