"""Reading ahead from the nodes: a search's top results while the model writes its next turn.

The read node starts it when a search's results come in; the search node settles it once the
model's turn is written, keeping only the pages that turn reads (none when it answers). The run
is the thread id of the graph's run, so runs that share their services keep apart. Nothing here
touches state: pages read ahead are a cache (see :mod:`fathom.tools.prefetch`).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage
from langgraph.config import get_config

from fathom.ports import Services


def run_scope() -> str:
    """The run a node works for: its thread id ("" outside a run that has one)."""
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # a node called on its own, outside a graph run
        return ""
    return str(configurable.get("thread_id") or "")


def read_ahead(services: Services, urls: Sequence[str]) -> None:
    """Start reading the top of ``urls`` (a search's results, best first), when services can."""
    if services.prefetch is not None and urls:
        services.prefetch.start(run_scope(), urls)


def settle_reads(services: Services, turn: AIMessage) -> None:
    """The model's ``turn`` is written: keep what its calls read, cancel the other reads ahead."""
    if services.prefetch is None:
        return
    keep = [url for call in turn.tool_calls if isinstance(url := call["args"].get("url"), str)]
    services.prefetch.settle(run_scope(), keep)
