"""Progress events the nodes emit on LangGraph's ``custom`` stream (the CLI renders them).

Outside a streaming run the writer is a no-op, so nodes call :func:`emit` unconditionally.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer


def emit(event: str, **data: Any) -> None:
    """Send ``{"event": event, **data}`` to whoever streams with ``stream_mode="custom"``."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (tests of a node on its own)
        return
    writer({"event": event, **data})
