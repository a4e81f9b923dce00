"""Run a question through the research graph, durably: what the CLI and the evaluator call.

Every run is recorded in the run registry and checkpointed with ``durability="sync"`` in the same
database, so a run killed at any point resumes from its last step: finished tool calls are never
repeated, and a resumed run keeps its original options unless the caller overrides them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import StateSnapshot

from fathom.checkpoints import RunRecord, Store, UnknownRunError, open_store
from fathom.graph.build import build_graph
from fathom.graph.context import FathomContext, Services
from fathom.settings import SECRET_ENV_VARS, Settings
from fathom.summary import run_summary

EventHandler = Callable[[dict[str, Any]], None]


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_config(run_id: str) -> dict[str, Any]:
    """Thread id = run id; ``metadata.run_id`` lets the saver delete a run's checkpoints."""
    return {"configurable": {"thread_id": run_id}, "metadata": {"run_id": run_id}}


def is_finished(snapshot: StateSnapshot) -> bool:
    """Whether the graph ran to its end (``next == ()`` alone is not proof after a crash)."""
    return snapshot.created_at is not None and not snapshot.tasks and not snapshot.interrupts


async def run_question(
    question: str | None,
    settings: Settings,
    *,
    run_id: str,
    checkpointer: BaseCheckpointSaver | None = None,
    services: Services | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Research ``question`` (or continue the thread when ``question`` is None); return the summary."""
    graph = build_graph(checkpointer=checkpointer or InMemorySaver())
    config = run_config(run_id)
    owned = services is None
    services = services or Services.from_settings(settings)
    try:
        stream = graph.astream(
            {"question": question} if question is not None else None,
            config,
            context=FathomContext(settings=settings, services=services),
            stream_mode="custom",
            durability="sync",
        )
        async for event in stream:
            if on_event is not None:
                on_event(event)
    finally:
        if owned:
            await services.aclose()
    # The full state (the output schema leaves the transcript out) from the run's last checkpoint.
    snapshot = await graph.aget_state(config)
    return run_summary(run_id, snapshot.values)


def process_marker() -> dict[str, Any]:
    """Which process runs a run, so a listing can tell a live run from one that died."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


async def execute(
    store: Store,
    record: RunRecord,
    settings: Settings,
    *,
    fresh: bool,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Run (``fresh``) or continue a recorded run, keeping its registry row honest throughout."""
    await store.runs.update(record.run_id, status="running", error=None, endpoints=_endpoints(settings))
    try:
        summary = await run_question(
            record.question if fresh else None,
            settings,
            run_id=record.run_id,
            checkpointer=store.saver,
            on_event=on_event,
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.shield(store.runs.update(record.run_id, status="interrupted"))
        raise
    except Exception as exc:
        await store.runs.update(record.run_id, status="failed", error=" ".join(str(exc).split()) or type(exc).__name__)
        raise
    status = "done" if summary["status"] == "answered" else "failed"
    await store.runs.update(
        record.run_id,
        status=status,
        rounds=int(summary["rounds"]),
        answer=summary["answer"],
        error=summary["error"],
    )
    return summary


def _endpoints(settings: Settings) -> dict[str, Any]:
    return {
        "search_model_url": settings.search_model_url,
        "synth_model_url": settings.synth_model_url,
        "query_llm": settings.query_llm,
        "search_backend": settings.resolved_search_backend,
        **process_marker(),
    }


async def research(
    question: str,
    settings: Settings,
    *,
    run_id: str,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Record a new run and research ``question`` to the end."""
    async with open_store(settings.db_url) as store:
        record = await store.runs.create(run_id, question, options=settings.public_dict())
        return await execute(store, record, settings, fresh=True, on_event=on_event)


def resume_settings(record: RunRecord, flags: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
    """The run's original options, then the flags given now; keys still come from the environment."""
    env = os.environ if environ is None else environ
    secrets = {var: env[var] for var in SECRET_ENV_VARS.values() if var in env}
    options = {k: v for k, v in record.options.items() if k in Settings.model_fields and k not in SECRET_ENV_VARS}
    options.update({k: v for k, v in flags.items() if v is not None and v != ()})
    return Settings.load(options, environ=secrets)


async def resume(
    run_id: str,
    flags: dict[str, Any],
    *,
    db_url: str | None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Continue run ``run_id`` from its last checkpoint, re-running only unfinished work."""
    async with open_store(db_url) as store:
        record = await store.runs.get(run_id)
        if record is None:
            raise UnknownRunError(f"no run {run_id!r} in {store.db.url}")
        settings = resume_settings(record, {**flags, "db_url": db_url})
        snapshot = await build_graph(checkpointer=store.saver).aget_state(run_config(run_id))
        if is_finished(snapshot):
            summary = run_summary(run_id, snapshot.values)
            if record.status != "done" and summary["status"] == "answered":
                await store.runs.update(run_id, status="done", rounds=summary["rounds"], answer=summary["answer"])
            return summary
        fresh = snapshot.created_at is None  # killed before the first checkpoint: start over
        return await execute(store, record, settings, fresh=fresh, on_event=on_event)


def _alive(marker: dict[str, Any]) -> bool:
    if marker.get("host") != socket.gethostname() or not isinstance(marker.get("pid"), int):
        return True  # another machine's run: trust its record
    try:
        os.kill(marker["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def honest_status(store: Store, record: RunRecord) -> str:
    """A ``running`` record whose process is gone was killed: it is ``interrupted`` (and resumable)."""
    if record.status == "running" and not _alive(record.endpoints):
        await store.runs.update(record.run_id, status="interrupted")
        return "interrupted"
    return record.status


async def load_state(store: Store, run_id: str) -> dict[str, Any]:
    """The latest state values of a run (empty when it never reached a checkpoint)."""
    snapshot = await build_graph(checkpointer=store.saver).aget_state(run_config(run_id))
    return dict(snapshot.values or {})
