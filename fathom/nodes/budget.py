"""How much the search model may write this turn, and when it must stop researching and answer.

Token use is tracked from the server's own counts: the latest turn's prompt + completion tokens,
plus a conservative estimate of what was appended since. Nothing re-tokenizes the transcript.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, AnyMessage

from fathom.ports import ResearchConfig
from fathom.protocols.base import SearchProtocol, TurnBudget
from fathom.protocols.prompts import search as say

SAFETY_MARGIN = 100  # tokens kept free of both prompt and completion, as upstream does
MIN_TURN = 512  # a research turn with less room than this is not worth taking
SYSTEM_ESTIMATE = 1500  # the system prompt before the server has counted it once


def tokens_since_last_turn(messages: list[AnyMessage], protocol: SearchProtocol) -> int:
    """Estimated tokens appended after the latest model turn (tool results, notes)."""
    # A protocol that lays results out itself (a summary instead of the page) counts them its way.
    estimate = getattr(protocol, "estimate_message", None)
    total = 0
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            break
        tokens = estimate(message) if estimate else protocol.estimate_tokens(str(message.content))
        total += tokens + 16  # + turn and tag overhead
    return total


def prompt_estimate(context_tokens: int, messages: list[AnyMessage], protocol: SearchProtocol) -> int:
    """The next prompt's tokens: the latest turn as the server counted it (``context_tokens``),
    plus an estimate of what was appended since."""
    return (context_tokens or SYSTEM_ESTIMATE) + tokens_since_last_turn(messages, protocol)


def research_limit(settings: ResearchConfig) -> int:
    """The largest prompt that still leaves room for a research turn; above it the turn must answer."""
    return settings.context_tokens - SAFETY_MARGIN - settings.answer_reserve_tokens - MIN_TURN


def plan_turn(
    *,
    rounds: int,
    context_tokens: int,
    messages: list[AnyMessage],
    settings: ResearchConfig,
    protocol: SearchProtocol,
    elapsed_s: float,
    must_answer: str | None = None,
) -> tuple[TurnBudget, str | None]:
    """The budget of the next turn and, when a budget ran out, the reason the turn must answer.

    ``context_tokens`` is the server's count of the latest turn (less what a fold since saved);
    ``must_answer`` is the reason of an earlier forced turn that did not answer (it is asked again).
    """
    estimate = prompt_estimate(context_tokens, messages, protocol)
    room = settings.context_tokens - estimate - SAFETY_MARGIN
    reason: str | None = None
    if not has_rounds_left(rounds, settings):
        reason = say.rounds_limit_reason(settings.max_rounds)
    elif elapsed_s >= settings.max_wall_seconds:
        reason = say.time_limit_reason(settings.max_wall_seconds)
    elif estimate > research_limit(settings):
        reason = context_limit_reason(settings)
    elif must_answer:
        reason = must_answer
    if reason is None:
        return TurnBudget(min(settings.max_new_tokens_per_turn, room - settings.answer_reserve_tokens)), None
    if room < settings.answer_reserve_tokens // 2:
        # Not even room for an answer: elide old tool results (the prefix cache is lost once).
        return compact_answer_budget(settings), reason
    return TurnBudget(max(64, min(room, settings.max_new_tokens_per_turn)), force_answer=True), reason


def has_rounds_left(rounds: int, settings: ResearchConfig) -> bool:
    """Whether a turn after round ``rounds`` may still research (not only answer)."""
    return rounds + 1 < settings.max_rounds


def context_limit_reason(settings: ResearchConfig) -> str:
    return say.context_limit_reason(settings.context_tokens)


def compact_answer_budget(settings: ResearchConfig) -> TurnBudget:
    """The last resort: answer now, with old tool results elided to make room."""
    return TurnBudget(settings.answer_reserve_tokens, force_answer=True, compact=True)
