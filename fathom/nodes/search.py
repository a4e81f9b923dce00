"""search: one turn of the search model, and what follows from it.

The turn either calls tools (the read node runs them), answers (verify checks it), or goes wrong in
a way the model is told about in its next turn (bad calls, cut-off or empty turns). Before the
turn, old tool results may be folded into digests (see :mod:`fathom.nodes.folding`) to stay inside
the context window. When a budget runs out the model gets a last turn, told to answer with what it
has; a forced turn that calls tools instead has its calls refused and is asked once more, and if
it still does not answer the run ends unanswered.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.messages.tool import invalid_tool_call
from langgraph.graph import END
from langgraph.types import Send

from fathom.graph.state import ResearchState
from fathom.models.base import ContextLengthError
from fathom.nodes.ahead import settle_reads
from fathom.nodes.budget import (
    SYSTEM_ESTIMATE,
    compact_answer_budget,
    context_limit_reason,
    plan_turn,
    prompt_estimate,
)
from fathom.nodes.folding import folded_view, plan_fold
from fathom.nodes.progress import emit
from fathom.ports import Services
from fathom.protocols.base import Turn, refused_call_responses
from fathom.protocols.prompts.search import FORCE_ANSWER_NOTE, too_many_calls_error

MAX_FORCED_TURNS = 2  # a forced turn that does not answer is asked once more, then the run ends


async def search(state: ResearchState, services: Services) -> dict[str, Any]:
    """Run one search-model turn over the transcript (folded first when it nears the context limit)."""
    settings = services.config
    protocol = services.protocol
    started = services.clock()
    elapsed_s = state.get("elapsed_s", 0.0) + _research_gap(state, started, settings.max_step_seconds)
    new: list[AnyMessage] = []
    messages = list(state.get("messages") or [])
    if not messages:
        new.append(HumanMessage(state["question"]))
    rounds = state.get("rounds", 0)
    digests = dict(state.get("digests") or {})
    known = state.get("context_tokens", 0)
    # Decided from checkpointed state only, so a resumed run folds (and renders) exactly the same.
    fold = plan_fold(
        messages=messages + new,
        digests=digests,
        question=state.get("question", ""),
        prompt_tokens=prompt_estimate(known, folded_view(messages + new, digests), protocol),
        rounds=rounds,
        settings=settings,
        protocol=protocol,
    )
    if fold is not None:
        digests.update(fold.digests)
        # The server's count is of the unfolded prompt: take off what the fold saved.
        known = max(1, (known or SYSTEM_ESTIMATE) - fold.saved_tokens)
        record = fold.record
        emit("fold", round=rounds + 1, results=len(fold.digests), before=record["tokens_before"], after=record["tokens_after"])
    misses = state.get("forced_misses", 0)
    budget, reason = plan_turn(
        rounds=rounds,
        context_tokens=known,
        messages=folded_view(messages + new, digests),
        settings=settings,
        protocol=protocol,
        elapsed_s=elapsed_s,
        must_answer=state.get("forced") if misses else None,
    )
    if reason:
        new.append(HumanMessage(FORCE_ANSWER_NOTE.format(reason=reason)))
    emit("turn", round=rounds + 1, forced=reason, context_tokens=known)
    try:
        turn = await protocol.turn(folded_view(messages + new, digests), budget)
    except ContextLengthError:
        if budget.compact:
            raise
        # Our estimate was short of the server's count: answer now, in a compacted prompt.
        reason = reason or context_limit_reason(settings)
        if not budget.force_answer:
            new.append(HumanMessage(FORCE_ANSWER_NOTE.format(reason=reason)))
        budget = compact_answer_budget(settings)
        turn = await protocol.turn(folded_view(messages + new, digests), budget)
    turn = _cap_calls(turn, settings.max_calls_per_turn)
    settle_reads(services, turn.message)  # pages read ahead that this turn does not read are dropped
    new.append(turn.message)
    new.extend(refused_call_responses(turn.message))
    if turn.notes and not turn.has_calls and turn.answer is None:
        new.append(HumanMessage("\n".join(turn.notes)))
    emit(
        "model",
        round=rounds + 1,
        calls=[{"name": c["name"], "args": c["args"]} for c in turn.message.tool_calls],
        invalid=[c.get("error") for c in turn.message.invalid_tool_calls],
        answer=turn.answer,
        finish_reason=turn.finish_reason,
        usage=turn.usage,
    )
    missed = budget.force_answer and turn.answer is None
    update: dict[str, Any] = {
        "messages": new,
        "rounds": rounds + 1,
        "usage": turn.usage,
        "context_tokens": turn.context_tokens or known,
        "forced": reason,
        "forced_misses": misses + 1 if missed else 0,
        "elapsed_s": elapsed_s + max(0.0, (finished := services.clock()) - started),
        "clock_at": finished,
    }
    if fold is not None:
        update.update(folds=[fold.record], digests=fold.digests)
    if turn.answer is not None:
        update.update(answer=turn.answer, boxed=turn.boxed)
    elif missed and misses + 1 >= MAX_FORCED_TURNS:
        update.update(status="unanswered", answer="", error=_unanswered_reason(reason, turn))
    return update


def _unanswered_reason(reason: str | None, turn: Turn) -> str:
    """Why a run ended without an answer after its forced turns (for people, not the model)."""
    what = "kept calling tools" if turn.message.invalid_tool_calls else "gave no answer"
    return f"the model {what} in {MAX_FORCED_TURNS} forced final turns ({reason}), so the run has no answer"


def _research_gap(state: ResearchState, now: float, max_step_s: float) -> float:
    """Seconds since the previous turn ended that count against the wall-clock budget.

    Between two turns run only steps of bounded length (tool calls, the judge); a longer gap
    is a pause (a crash, a plan review, a resume the next day) and is not research time.
    """
    last = state.get("clock_at")
    gap = now - last if last is not None else 0.0
    return gap if 0.0 <= gap <= max_step_s else 0.0


def _cap_calls(turn: Turn, limit: int) -> Turn:
    """Run at most ``limit`` calls of one turn; the rest get an error the model can read."""
    calls = turn.message.tool_calls
    if len(calls) <= limit:
        return turn
    error = too_many_calls_error(limit)
    refused = [invalid_tool_call(name=c["name"], args=str(c["args"]), id=c["id"], error=error) for c in calls[limit:]]
    turn.message = turn.message.model_copy(
        update={"tool_calls": calls[:limit], "invalid_tool_calls": [*turn.message.invalid_tool_calls, *refused]}
    )
    return turn


def route_after_search(state: ResearchState) -> Any:
    """Tool calls go to read (one Send each), an answer goes to verify, anything else back to
    search; a run left unanswered by its forced turns ends (its report is still written when one
    was asked for, as after a failed answer)."""
    if state.get("status") == "unanswered":
        return "plan" if state.get("deepresearch") else END
    messages = state.get("messages") or []
    last_ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    if last_ai is None:
        return "search"
    if last_ai.tool_calls:
        order = last_ai.additional_kwargs.get("call_order") or [c["id"] for c in last_ai.tool_calls]
        raws = last_ai.additional_kwargs.get("raw_calls", {})
        return [
            Send(
                "read",
                {
                    "call": dict(call),
                    "raw": raws.get(call["id"]) or _default_raw(call),
                    "index": order.index(call["id"]) if call["id"] in order else position,
                },
            )
            for position, call in enumerate(last_ai.tool_calls)
        ]
    if state.get("forced_misses"):
        return "search"  # a forced turn did not answer: it is asked once more
    if isinstance(messages[-1], AIMessage):
        return "verify"
    return "search"


def _default_raw(call: dict[str, Any]) -> str:
    return json.dumps({"name": call["name"], "arguments": call["args"]}, ensure_ascii=False)
