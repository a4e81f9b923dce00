"""verify: check the model's final answer before the run accepts it.

First the form: an empty or unboxed answer, or one with no successful tool call behind it, goes
back to the search model once with a note. Then the substance (unless ``--no-verify``): a judge
(the query LLM, else the search model's chat route) decides whether the evidence gathered supports
the answer; if not, and budget remains, the model hears why and researches on, at most
``max_verify_loops`` times. Verdicts, reasons and supporting URLs are kept in state.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from fathom.graph.state import ResearchState
from fathom.models.base import ModelError
from fathom.nodes.budget import has_rounds_left
from fathom.nodes.citations import retrieved_sources
from fathom.nodes.progress import emit
from fathom.ports import Services
from fathom.protocols.base import extract_answer, split_think
from fathom.protocols.judge import (
    Judgement,
    evidence_text,
    judge_messages,
    parse_judgement,
)
from fathom.protocols.prompts import judge as say

MAX_SEND_BACKS = 1
JUDGE_MAX_TOKENS = 1024


async def verify(state: ResearchState, services: Services) -> dict[str, Any]:
    """Accept the answer, or send the model back to research with a note."""
    settings = services.config
    messages = list(state.get("messages") or [])
    answer = (state.get("answer") or "").strip()
    boxed = state.get("boxed", False)
    problems = _problems(messages, answer, boxed)
    previous = state.get("verification") or {}
    send_backs = int(previous.get("send_backs", 0))
    loops = int(previous.get("loops", 0))
    budget_left = not state.get("forced") and has_rounds_left(state.get("rounds", 0), settings)
    checks = [*previous.get("checks", []), {"answer": answer, "problems": problems}]
    record = {"checks": checks, "send_backs": send_backs, "loops": loops}

    if problems and budget_left and send_backs < MAX_SEND_BACKS:
        note = " ".join(problems)
        emit("verify", accepted=False, note=note)
        return _send_back(note, {**record, "send_backs": send_backs + 1, "verdict": "sent_back"})

    if not answer:
        # Last resort: the tail of the final turn, flagged as unboxed.
        finals = [str(m.content) for m in messages if isinstance(m, AIMessage)]
        if finals:
            answer, boxed = extract_answer(split_think(finals[-1])[1] or finals[-1], finals[:-1])

    judgement = Judgement("unverified", reason="verification is off") if not settings.verify else None
    if judgement is None and answer:
        judgement = await _judge(services, state["question"], answer, messages)
        checks[-1]["judgement"] = judgement.as_dict()
        if judgement.verdict == "unsupported" and budget_left and loops < settings.max_verify_loops:
            note = say.unsupported_note(judgement.reason, judgement.missing)
            emit("verify", accepted=False, note=note)
            return _send_back(note, {**record, "loops": loops + 1, **judgement.as_dict()})

    status = "answered" if answer else "failed"
    verdict = judgement.as_dict() if judgement else {"verdict": "unverified", "reason": "no answer to check"}
    emit("verify", accepted=True, status=status, verdict=verdict["verdict"])
    return {
        "answer": answer,
        "boxed": boxed,
        "status": status,
        "error": None if answer else "the model gave no answer",
        "verification": {**record, **verdict},
    }


def _send_back(note: str, verification: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [HumanMessage(note)], "answer": "", "verification": verification}


async def _judge(services: Services, question: str, answer: str, messages: list[Any]) -> Judgement:
    """Ask the judge; a judge that fails leaves the answer unverified, never fails the run."""
    if services.judge is None:
        return Judgement("unverified", reason="no judge model is configured")
    try:
        reply = await services.judge.complete(
            judge_messages(question, answer, evidence_text(messages)), temperature=0.0, max_tokens=JUDGE_MAX_TOKENS
        )
    except ModelError as exc:
        return Judgement("unverified", reason=f"the judge failed: {exc}")
    return parse_judgement(reply.content, {source["url"] for source in retrieved_sources(messages)})


def _problems(messages: list[Any], answer: str, boxed: bool) -> list[str]:
    problems = []
    if not answer:
        problems.append(say.NO_ANSWER_NOTE)
    elif not boxed:
        problems.append(say.NOT_BOXED_NOTE)
    if not any(isinstance(m, ToolMessage) and m.status != "error" for m in messages):
        problems.append(say.NO_SUCCESSFUL_CALL_NOTE)
    elif problems:
        problems.append(say.ANSWER_AGAIN_NOTE)
    return problems


def route_after_verify(state: ResearchState) -> str:
    if state.get("status") not in ("answered", "failed"):
        return "search"
    return "plan" if state.get("deepresearch") else "done"
