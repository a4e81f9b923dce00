"""A run's state, summarised as the JSON users and tools read (``--json``, ``runs show``)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, ToolMessage


def tool_calls(messages: list[Any]) -> list[dict[str, Any]]:
    """Every tool call of the run, in the order the model made them, with whether it succeeded."""
    calls: list[dict[str, Any]] = []
    turn: list[ToolMessage] = []

    def flush() -> None:
        for message in sorted(turn, key=lambda m: (m.artifact or {}).get("index", 0)):
            artifact = message.artifact or {}
            calls.append(
                {
                    "name": message.name,
                    "arguments": artifact.get("args", artifact.get("raw")),
                    "ok": message.status != "error",
                }
            )
        turn.clear()

    for message in messages:
        if isinstance(message, AIMessage):
            flush()
        elif isinstance(message, ToolMessage):
            turn.append(message)
    flush()
    return calls


def run_summary(run_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` object of a run from its final (or latest) state values."""
    usage = values.get("usage") or {}
    return {
        "run_id": run_id,
        "question": values.get("question", ""),
        "status": values.get("status", "researching"),
        "answer": values.get("answer") or None,
        "boxed": bool(values.get("boxed", False)),
        "rounds": values.get("rounds", 0),
        "tool_calls": tool_calls(values.get("messages") or []),
        "sources": [{"url": s["url"], "title": s.get("title", "")} for s in values.get("sources") or []],
        "usage": {
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "cached_tokens": int(usage.get("cached_tokens", 0)),
        },
        "error": values.get("error"),
    }
