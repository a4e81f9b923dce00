"""Run a question through the research graph: what the CLI and the evaluator call.

The graph streams progress (``custom``) and state (``values``); the caller gets each progress event
through ``on_event`` and the run's summary at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from fathom.graph.build import build_graph
from fathom.graph.context import FathomContext, Services
from fathom.settings import Settings
from fathom.summary import run_summary

EventHandler = Callable[[dict[str, Any]], None]


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_config(run_id: str) -> dict[str, Any]:
    """Thread id = run id; ``metadata.run_id`` lets the saver delete a run's checkpoints."""
    return {"configurable": {"thread_id": run_id}, "metadata": {"run_id": run_id}}


async def run_question(
    question: str | None,
    settings: Settings,
    *,
    run_id: str,
    checkpointer: BaseCheckpointSaver | None = None,
    services: Services | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Research ``question`` (or continue the run when ``question`` is None) and return its summary."""
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
