"""verify: check the model's final answer before the run accepts it.

First the form: an empty or unboxed answer, or one with no successful tool call behind it, goes
back to the search model once with a note. Then the substance (``verify``: off, on or strict):
an answer that appears verbatim (normalised) in a page the run read is supported at no cost;
otherwise (always, with ``strict``) a judge (the query LLM, else the search model's chat route)
gives a short verdict on the evidence. If unsupported, and budget remains, the model hears why and
researches on, at most ``max_verify_loops`` times. Verdicts, reasons, supporting URLs and what
decided (``decided_by``: verbatim in evidence, or the judge) are kept in state.
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
    BY_JUDGE,
    JUDGE_MAX_TOKENS,
    Evidence,
    Judgement,
    evidence_of,
    judge_evidence,
    judge_messages,
    parse_judgement,
    verbatim_support,
)
from fathom.protocols.prompts import judge as say

MAX_SEND_BACKS = 1
VERIFY_MODES = ("off", "on", "strict")


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

    mode = verify_mode(settings.verify)
    judgement = Judgement("unverified", reason="verification is off") if mode == "off" else None
    if judgement is None and answer:
        evidence = evidence_of(messages)
        # Only a boxed answer is checked verbatim: a last-resort tail of the turn goes to the judge.
        judgement = verbatim_support(answer, evidence) if mode == "on" and boxed else None
        judgement = judgement or await _judge(services, state["question"], answer, messages, evidence)
        checks[-1]["judgement"] = judgement.as_dict()
        if judgement.verdict == "unsupported" and budget_left and loops < settings.max_verify_loops:
            note = say.unsupported_note(judgement.reason, judgement.missing)
            emit("verify", accepted=False, note=note, decided_by=judgement.decided_by)
            return _send_back(note, {**record, "loops": loops + 1, **judgement.as_dict()})

    status = "answered" if answer else "failed"
    verdict = judgement.as_dict() if judgement else {"verdict": "unverified", "reason": "no answer to check"}
    emit("verify", accepted=True, status=status, verdict=verdict["verdict"], decided_by=verdict.get("decided_by", ""))
    return {
        "answer": answer,
        "boxed": boxed,
        "status": status,
        "error": None if answer else "the model gave no answer",
        "verification": {**record, **verdict},
    }


def _send_back(note: str, verification: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [HumanMessage(note)], "answer": "", "verification": verification}


def verify_mode(value: object) -> str:
    """``off``, ``on`` or ``strict`` from the configured value (``True``/``False`` are on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value) if str(value) in VERIFY_MODES else "on"


async def _judge(
    services: Services, question: str, answer: str, messages: list[Any], evidence: list[Evidence]
) -> Judgement:
    """Ask the judge; a judge that fails leaves the answer unverified, never fails the run."""
    if services.judge is None:
        return Judgement("unverified", reason="no judge model is configured")
    shown = judge_evidence(evidence)
    try:
        reply = await services.judge.complete(
            judge_messages(question, answer, shown), temperature=0.0, max_tokens=JUDGE_MAX_TOKENS
        )
    except ModelError as exc:
        return Judgement("unverified", reason=f"the judge failed: {exc}", decided_by=BY_JUDGE)
    return parse_judgement(reply.content, shown, {source["url"] for source in retrieved_sources(messages)})


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
