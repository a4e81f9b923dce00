"""review: a human accepts, edits or aborts the plan before the report is written.

The graph interrupts with ``{"kind": "plan_review", "question", "plan"}``; resume it with
``Command(resume=…)`` where the value is ``"accept"``, ``"abort"``, ``{"action": "edit", "plan": …}``
(or the same keys with ``"action": "accept" | "abort"``). Anything else asks again, saying why.
"""

from __future__ import annotations

from typing import Any

from langgraph.types import interrupt

from fathom.graph.state import ResearchState
from fathom.nodes.progress import emit

ACTIONS = ("accept", "edit", "abort")


def parse_decision(value: Any) -> tuple[str, str | None]:
    """``(action, edited plan)`` from a resume value; raises ValueError with a user-facing reason."""
    if isinstance(value, str):
        value = {"action": value.strip().lower()}
    if not isinstance(value, dict):
        raise ValueError("resume with 'accept', 'abort' or {'action': 'edit', 'plan': '…'}")
    action = str(value.get("action", "")).strip().lower()
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use accept, edit or abort")
    if action == "edit":
        plan = value.get("plan")
        if not isinstance(plan, str) or not plan.strip():
            raise ValueError("an edit needs the new plan text in 'plan'")
        return action, plan.strip()
    return action, None


def review(state: ResearchState) -> dict[str, Any]:
    """Pause for the human's decision on the plan."""
    request: dict[str, Any] = {"kind": "plan_review", "question": state["question"], "plan": state.get("plan", "")}
    while True:
        try:
            action, edited = parse_decision(interrupt(request))
            break
        except ValueError as exc:
            request = {**request, "error": str(exc)}
    emit("review", action=action)
    if action == "abort":
        return {"report_status": "aborted"}
    if action == "edit":
        return {"plan": edited}
    return {}


def route_after_review(state: ResearchState) -> str:
    return "done" if state.get("report_status") == "aborted" else "write"
