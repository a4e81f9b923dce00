"""verify: check the model's final answer before the run accepts it.

An answer with no successful tool call behind it, or an empty or unboxed answer, goes back to the
search model once, with a note saying what is wrong, while budget remains. Otherwise the run ends.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.runtime import Runtime

from fathom.graph.context import FathomContext, get_services
from fathom.graph.state import ResearchState
from fathom.nodes.progress import emit
from fathom.protocols.base import extract_answer, split_think

MAX_SEND_BACKS = 1


async def verify(state: ResearchState, runtime: Runtime[FathomContext]) -> dict[str, Any]:
    """Accept the answer, or send the model back to research with a note."""
    settings = get_services(runtime.context).settings
    messages = state.get("messages") or []
    answer = (state.get("answer") or "").strip()
    boxed = state.get("boxed", False)
    problems = _problems(messages, answer, boxed)
    previous = state.get("verification") or {}
    send_backs = int(previous.get("send_backs", 0))
    budget_left = not state.get("forced") and state.get("rounds", 0) + 1 < settings.max_rounds
    checks = [*previous.get("checks", []), {"answer": answer, "problems": problems}]
    if problems and budget_left and send_backs < MAX_SEND_BACKS:
        note = " ".join(problems)
        emit("verify", accepted=False, note=note)
        return {
            "messages": [HumanMessage(note)],
            "answer": "",
            "verification": {"checks": checks, "send_backs": send_backs + 1, "verdict": "sent_back"},
        }
    if not answer:
        # Last resort: the tail of the final turn, flagged as unboxed.
        finals = [str(m.content) for m in messages if isinstance(m, AIMessage)]
        if finals:
            answer, boxed = extract_answer(split_think(finals[-1])[1] or finals[-1], finals[:-1])
    status = "answered" if answer else "failed"
    emit("verify", accepted=True, status=status)
    return {
        "answer": answer,
        "boxed": boxed,
        "status": status,
        "error": None if answer else "the model gave no answer",
        "verification": {"checks": checks, "send_backs": send_backs, "verdict": "accepted" if not problems else "unverified"},
    }


def _problems(messages: list[Any], answer: str, boxed: bool) -> list[str]:
    problems = []
    if not answer:
        problems.append("I could not find a final answer in your last turn.")
    elif not boxed:
        problems.append("Your final answer must be written inside \\boxed{}.")
    if not any(isinstance(m, ToolMessage) and m.status != "error" for m in messages):
        problems.append(
            "You answered without a single successful tool call, so nothing backs the answer. "
            "Search the web and check it before answering again."
        )
    elif problems:
        problems.append("Give your final answer again, inside \\boxed{}.")
    return problems


def route_after_verify(state: ResearchState) -> str:
    return "done" if state.get("status") in ("answered", "failed") else "search"
