"""A run's state, summarised as the JSON users and tools read (``--json``, ``runs show``)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

from fathom.protocols.base import call_order


def tool_calls(messages: list[Any]) -> list[dict[str, Any]]:
    """Every tool call of the run, in the order the model made them, with whether it succeeded."""
    return [_call(message) for message in _tool_messages(messages)]


def _call(message: ToolMessage) -> dict[str, Any]:
    artifact = message.artifact or {}
    return {"name": message.name, "arguments": artifact.get("args", artifact.get("raw")), "ok": message.status != "error"}


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
        "plan": values.get("plan"),
        "report": values.get("report"),
        "report_status": values.get("report_status"),
        "citations": values.get("citations"),
        "verification": values.get("verification"),
        "folds": list(values.get("folds") or []),
    }


def _message_view(message: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"type": message.type, "content": message.content}
    if isinstance(message, AIMessage):
        if message.tool_calls:
            view["tool_calls"] = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls]
        if message.invalid_tool_calls:
            view["invalid_tool_calls"] = [
                {"id": c.get("id"), "name": c.get("name"), "args": c.get("args"), "error": c.get("error")}
                for c in message.invalid_tool_calls
            ]
    elif isinstance(message, ToolMessage):
        view.update(name=message.name, tool_call_id=message.tool_call_id, ok=message.status != "error")
    return view


def tool_results(messages: list[Any], *, max_chars: int | None = None) -> list[dict[str, Any]]:
    """Each tool call with its result text (cut to ``max_chars`` when given)."""
    results = []
    for message in _tool_messages(messages):
        text = str(message.content)
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars] + f" … [{len(text) - max_chars} more characters]"
        results.append({**_call(message), "result": text})
    return results


def _tool_messages(messages: list[Any]) -> list[ToolMessage]:
    """Tool results in call order: by turn, then by the call's position in its turn."""
    return [messages[i] for i in call_order(messages) if isinstance(messages[i], ToolMessage)]


def export_json(run_id: str, values: dict[str, Any], record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full trace of a run: summary (verification included), registry record and every message."""
    return {
        **run_summary(run_id, values),
        "record": record or {},
        "tool_results": tool_results(values.get("messages") or []),
        "transcript": [_message_view(m) for m in values.get("messages") or []],
    }


def export_markdown(run_id: str, values: dict[str, Any]) -> str:
    """The full trace of a run as a readable Markdown document."""
    summary = run_summary(run_id, values)
    lines = [f"# {summary['question']}", "", f"- run: `{run_id}`", f"- status: {summary['status']}"]
    lines += [f"- rounds: {summary['rounds']}", f"- answer: {summary['answer'] or '—'}", ""]
    round_no = 0
    for message in values.get("messages") or []:
        if isinstance(message, AIMessage):
            round_no += 1
            lines += [f"## Round {round_no}", "", "```text", str(message.content).strip(), "```", ""]
        elif isinstance(message, ToolMessage):
            args = (message.artifact or {}).get("args", {})
            mark = "ok" if message.status != "error" else "error"
            lines += [f"### {message.name} ({mark})", "", f"`{json.dumps(args, ensure_ascii=False)}`", ""]
            lines += ["```text", str(message.content).strip(), "```", ""]
        elif round_no:
            lines += ["> " + str(message.content).replace("\n", "\n> "), ""]
    if summary["sources"]:
        lines += ["## Sources", ""] + [f"- [{s['title'] or s['url']}]({s['url']})" for s in summary["sources"]]
    return "\n".join(lines).rstrip() + "\n"
