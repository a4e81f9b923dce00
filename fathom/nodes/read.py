"""read: run one tool call of the model's turn.

Each call is its own task (one ``Send`` per call), so the calls of a turn run concurrently and each
finished call is checkpointed on its own: after a crash only unfinished calls run again. A tool
never raises into the graph; every failure becomes text the model can read.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import ToolMessage

from fathom.graph.state import ReadTask
from fathom.nodes.ahead import read_ahead
from fathom.nodes.progress import emit
from fathom.ports import Services
from fathom.tools.base import ToolOutcome

log = logging.getLogger(__name__)


async def read(task: ReadTask, services: Services) -> dict[str, Any]:
    """Execute one validated tool call and record its result in the transcript."""
    call = task["call"]
    emit("tool_start", name=call["name"], args=call["args"], index=task["index"])
    outcome = await _run(services, call["name"], call["args"])
    if call["name"] == "search_urls" and outcome.ok:  # the model's next turn likely reads some of these
        read_ahead(services, [s["url"] for s in outcome.sources])
    urls = [s["url"] for s in outcome.sources]
    error = None if outcome.ok else outcome.text  # the progress line says why a call failed
    emit("tool_end", name=call["name"], args=call["args"], ok=outcome.ok, urls=urls, index=task["index"], error=error)
    message = ToolMessage(
        content=outcome.text,
        tool_call_id=call["id"],
        name=call["name"],
        status="success" if outcome.ok else "error",
        artifact={
            "index": task["index"],
            "raw": task["raw"],
            "args": call["args"],
            "ok": outcome.ok,
            "sources": [dict(s) for s in outcome.sources],
        },
    )
    if outcome.data is not None:
        message.artifact["data"] = outcome.data
    return {"messages": [message], "sources": _pages_read(call["name"], outcome)}


def _pages_read(name: str, outcome: ToolOutcome) -> list[dict[str, Any]]:
    """The pages a call read (not the hits it only listed)."""
    if not outcome.ok:
        return []
    if name in ("query_url", "read_page"):
        return [dict(s) for s in outcome.sources]
    pages = (outcome.data or {}).get("pages") or []
    return [{"url": p["url"], "title": p.get("title") or p["url"]} for p in pages]


async def _run(services: Services, name: str, args: dict[str, Any]) -> ToolOutcome:
    toolbox = services.tools
    try:
        if name == "search_urls":
            return await toolbox.search_urls(args["query"], args.get("top_k", services.config.search_top_k))
        if name == "query_url":
            return await toolbox.query_url(args["url"], args["goal"])
        if name == "read_page":
            return await toolbox.read_page(args["url"], int(args["max_chars"]))
        if name == "search_pages":
            return await toolbox.search_pages(
                args["query"], args.get("top_k", services.config.search_top_k), read=int(args.get("read", 0)),
                want=int(args.get("want", 0)), host=str(args.get("host", "")),
                max_chars=int(args.get("max_chars", 35000)),
            )
    except Exception as exc:  # a tool bug must not end a run the model can continue
        log.exception("tool %s failed", name)
        return ToolOutcome(f"[error] {name} failed unexpectedly: {type(exc).__name__}: {exc}", ok=False)
    return ToolOutcome(f"[error] unknown tool {name!r}", ok=False)
