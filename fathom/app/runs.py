"""Run a question through the research graph, durably: what the CLI and the evaluator call.

Every run is recorded in the run registry and checkpointed with ``durability="sync"`` in the same
database, so a run killed at any point resumes from its last step: finished tool calls are never
repeated, and a resumed run keeps its original options unless the caller overrides them.

The graph, LangGraph's runtime and the model clients are imported by the functions that run a
graph, so that listing runs (``fathom runs list``) stays quick.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fathom.aio import loop_is_own
from fathom.errors import RunStoppedByStoreError, StoreError
from fathom.settings import SECRET_ENV_VARS, Settings
from fathom.startup import collector_paused
from fathom.store import Database, RunRecord, RunStatus, Store, UnknownRunError, open_store

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.types import Command, StateSnapshot

    from fathom.ports import Services

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
    question: str | dict[str, Any] | Command | None,
    settings: Settings,
    *,
    run_id: str,
    checkpointer: BaseCheckpointSaver | None = None,
    services: Services | None = None,
    database: Database | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Run the graph on ``question`` (a string or a full input dict), a ``Command`` (resuming an
    interrupt), or None (continuing the thread); return the run's summary.

    A run that stops at the plan review carries the request under ``summary["review"]``.
    """
    with collector_paused(freeze=loop_is_own()):
        from langgraph.checkpoint.memory import InMemorySaver

        from fathom.app.services import build_services, research_graph
        from fathom.graph.context import FathomContext

    graph = research_graph(checkpointer=checkpointer or InMemorySaver())
    config = run_config(run_id)
    owned = services is None
    services = services or build_services(settings, database=database)
    payload = {"question": question} if isinstance(question, str) else question
    try:
        stream = graph.astream(
            payload,
            config,
            context=FathomContext(settings=settings, services=services),
            stream_mode="custom",
            durability="sync",
        )
        async for event in stream:
            if on_event is not None:
                on_event(event)
    finally:
        if services.prefetch is not None:  # the run is over: nothing of it reads on
            await services.prefetch.finish(run_id)
        if owned:
            await services.aclose()
    # The full state (the output schema leaves the transcript out) from the run's last checkpoint.
    snapshot = await graph.aget_state(config)
    return summary_of(run_id, snapshot)


def summary_of(run_id: str, snapshot: StateSnapshot) -> dict[str, Any]:
    """The summary of a run's latest state, with any pending plan review request."""
    from fathom.app.summary import run_summary

    summary = run_summary(run_id, snapshot.values)
    if snapshot.interrupts:
        summary["review"] = snapshot.interrupts[0].value
    return summary


def process_marker() -> dict[str, Any]:
    """Which process runs a run, so a listing can tell a live run from one that died."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


async def execute(
    store: Store,
    record: RunRecord,
    settings: Settings,
    *,
    payload: dict[str, Any] | Command | None,
    on_event: EventHandler | None = None,
    services: Services | None = None,
) -> dict[str, Any]:
    """Run ``payload`` on a recorded run (its input, a resume Command, or None to continue),
    keeping its registry row honest throughout. The summary's ``status`` is the run's
    (:func:`final_status`). ``services``: the caller's (shared by many runs, left open);
    by default the run builds its own on the store's database."""
    endpoints = run_endpoints(settings)
    if (record.status, record.error, record.endpoints) != ("running", None, endpoints):  # a new run has it all
        await store.runs.update(record.run_id, status="running", error=None, endpoints=endpoints)
    try:
        summary = await run_question(
            payload,
            settings,
            run_id=record.run_id,
            checkpointer=store.saver,
            services=services,
            database=store.db,
            on_event=on_event,
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.shield(store.runs.update(record.run_id, status="interrupted"))
        raise
    except Exception as exc:
        from fathom.models.base import ModelUnavailableError

        # An unreachable model server or a database that failed a write stops the run, it does
        # not fail it: its checkpoints hold every step that finished, so it resumes once they work.
        stopped: RunStatus = "interrupted" if isinstance(exc, (ModelUnavailableError, StoreError)) else "failed"
        try:
            await store.runs.update(record.run_id, status=stopped, error=" ".join(str(exc).split()) or type(exc).__name__)
        except StoreError:
            if not isinstance(exc, StoreError):
                raise
            # the database is still failing: the record says "running" until this process
            # ends, then listings show it interrupted (see honest_status)
        if isinstance(exc, StoreError) and not isinstance(exc, RunStoppedByStoreError):
            raise RunStoppedByStoreError(str(exc), record.run_id) from exc
        raise
    status = final_status(summary)
    await store.runs.update(
        record.run_id,
        status=status,
        rounds=int(summary["rounds"]),
        answer=summary["answer"],
        report=summary["report"],
        error=summary["error"],
    )
    return {**summary, "status": status}


def final_status(summary: dict[str, Any]) -> RunStatus:
    """The status (see :data:`fathom.store.RUN_STATUSES`) of a run that stopped with ``summary``."""
    if "review" in summary:
        return "waiting"  # for a human: `fathom resume` asks again
    if summary["status"] == "answered" and summary["report_status"] in (None, "written", "aborted"):
        return "answered"  # a declined report ("aborted") leaves the answer standing
    if summary["status"] == "unanswered":
        return "unanswered"  # the model would not answer even when told to: the reason is in error
    return "failed"


def run_endpoints(settings: Settings) -> dict[str, Any]:
    """What a run records of where it runs: model and search endpoints, and this process."""
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
    deepresearch: bool = False,
    review_plan: bool = False,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Record a new run and research ``question`` (and write its report when ``deepresearch``)."""
    with collector_paused(freeze=loop_is_own()):
        from fathom.app.services import prompt_digests

    inputs = {"question": question, "deepresearch": deepresearch, "review_plan": review_plan, "language": settings.language}
    # The run records where its prompts came from and their sha256 (the texts are not stored).
    options = {**settings.public_dict(), "prompts": prompt_digests(settings), "inputs": inputs}
    async with open_store(settings.db_url) as store:
        record = await store.runs.create(run_id, question, options=options, endpoints=run_endpoints(settings))
        return await execute(store, record, settings, payload=inputs, on_event=on_event)


def resume_settings(
    record: RunRecord,
    flags: dict[str, Any],
    environ: dict[str, str] | None = None,
    *,
    config_file: Path | None = None,
) -> Settings:
    """The run's original options, then ``config_file``'s settings, then the flags given now; keys
    still come from the environment.

    Raises:
        ConfigError: a flag or the config file holds a bad value.
    """
    env = os.environ if environ is None else environ
    secrets = {var: env[var] for var in SECRET_ENV_VARS.values() if var in env}
    options = {k: v for k, v in record.options.items() if k in Settings.model_fields and k not in SECRET_ENV_VARS}
    if config_file is not None:
        options.update(Settings.load(config_file=config_file, environ={}).model_dump(exclude_unset=True))
    options.update({k: v for k, v in flags.items() if v is not None and v != ()})
    return Settings.load(options, environ=secrets)


async def resume(
    run_id: str,
    flags: dict[str, Any],
    *,
    db_url: str | None,
    config_file: Path | None = None,
    decision: Any = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Continue run ``run_id`` from its last checkpoint, re-running only unfinished work.

    ``decision`` answers a pending plan review (see :mod:`fathom.nodes.review`); without one, a
    run waiting for review returns its summary with the request under ``"review"`` again.
    ``flags`` and ``config_file`` override the run's recorded options.
    """
    from langgraph.types import Command

    from fathom.app.services import research_graph

    async with open_store(db_url) as store:
        record = await require_run(store, run_id)
        if on_event is not None:
            on_event({"event": "resume", "run_id": run_id, "question": record.question})
        snapshot = await research_graph(checkpointer=store.saver).aget_state(run_config(run_id))
        if is_finished(snapshot) or (snapshot.interrupts and decision is None):
            # nothing to run (or nothing to run yet): only make the record match the state
            summary = summary_of(run_id, snapshot)
            if record.status != (status := final_status(summary)):
                await store.runs.update(run_id, status=status, rounds=summary["rounds"], answer=summary["answer"])
            return {**summary, "status": status}
        if snapshot.interrupts:
            payload: Any = Command(resume=decision)
        elif snapshot.created_at is None:  # killed before the first checkpoint: start over
            payload = record.options.get("inputs") or {"question": record.question}
        else:
            payload = None
        settings = resume_settings(record, {**flags, "db_url": db_url}, config_file=config_file)
        return await execute(store, record, settings, payload=payload, on_event=on_event)


async def require_run(store: Store, run_id: str) -> RunRecord:
    """The run's registry record.

    Raises:
        UnknownRunError: no run ``run_id`` in the store's database.
    """
    record = await store.runs.get(run_id)
    if record is None:
        raise UnknownRunError(f"no run {run_id!r} in {store.db.url}")
    return record


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
    from fathom.app.services import research_graph

    snapshot = await research_graph(checkpointer=store.saver).aget_state(run_config(run_id))
    return dict(snapshot.values or {})
