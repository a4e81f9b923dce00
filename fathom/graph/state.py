"""The research graph's state: JSON-primitive values plus langchain-core messages.

``messages`` is the canonical transcript (the question, every model turn, every tool result and
every note to the model); protocols render it. Everything else is small bookkeeping.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from fathom.tools.base import Source

# unanswered: a forced final turn kept calling tools instead of answering (see nodes/search.py)
Status = Literal["researching", "answered", "failed", "unanswered"]


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


def merge_sources(current: list[Source] | None, new: list[Source] | None) -> list[Source]:
    """Append sources not seen before (by URL), keeping first-seen order."""
    merged = list(current or [])
    seen = {s["url"] for s in merged}
    for source in new or []:
        if source["url"] not in seen:
            seen.add(source["url"])
            merged.append(source)
    return merged


class FoldRecord(TypedDict):
    """One fold (see :mod:`fathom.nodes.folding`): before which round, which tool results, and the
    estimated prompt tokens before and after it."""

    at_round: int
    message_ids: list[str]
    tokens_before: int
    tokens_after: int


def add_folds(current: list[FoldRecord] | None, new: list[FoldRecord] | None) -> list[FoldRecord]:
    """Append new folds."""
    return [*(current or []), *(new or [])]


def add_digests(current: dict[str, str] | None, new: dict[str, str] | None) -> dict[str, str]:
    """Add digests by message id (a message is folded once, so nothing is replaced)."""
    return {**(current or {}), **(new or {})}


def add_usage(current: Usage | None, new: Usage | None) -> Usage:
    """Sum token counts."""
    total: dict[str, int] = dict(current or {})
    for key, value in (new or {}).items():
        total[key] = total.get(key, 0) + int(value)
    return total  # type: ignore[return-value]


class InputState(TypedDict, total=False):
    """What a caller gives: the question, and optionally a report request."""

    question: str  # required
    deepresearch: bool  # also write a cited report (plan, then write)
    review_plan: bool  # pause after the plan for a human to accept, edit or abort it
    language: str  # the report's language


class OutputState(TypedDict, total=False):
    """What a caller gets back."""

    question: str
    answer: str
    boxed: bool
    status: Status
    sources: list[Source]
    rounds: int
    error: str | None
    plan: str
    report: str
    citations: dict[str, Any]
    verification: dict[str, Any]
    folds: list[FoldRecord]


class ResearchState(TypedDict, total=False):
    question: str
    messages: Annotated[list[AnyMessage], add_messages]
    status: Status
    answer: str
    boxed: bool  # the answer was found in \boxed{} rather than taken from the turn's tail
    rounds: int  # model turns taken
    forced: str | None  # why the last turn was forced to answer (budget reason), if it was
    context_tokens: int  # prompt + completion tokens of the latest turn, as the server counted
    # Folding: the model reads ``digests[id]`` in place of each folded tool result; ``messages``
    # itself is never rewritten (the synthesizer and ``runs show`` read the full results).
    folds: Annotated[list[FoldRecord], add_folds]
    digests: Annotated[dict[str, str], add_digests]
    forced_misses: int  # forced turns in a row that did not answer (calls refused, asked again)
    elapsed_s: float  # research seconds spent so far (pauses between invocations not counted)
    clock_at: float  # epoch seconds when the latest search turn ended
    usage: Annotated[Usage, add_usage]
    sources: Annotated[list[Source], merge_sources]  # pages read successfully
    verification: dict[str, Any]  # the verify node's verdicts: {"checks", "send_backs", "verdict"}
    error: str | None
    deepresearch: bool
    review_plan: bool
    language: str
    plan: str  # the synthesizer's section plan and evidence map (possibly edited by a human)
    plan_raw: str  # the plan exactly as generated, so write extends the cached prompt
    report: str  # the report with citations checked and sources rebuilt
    citations: dict[str, Any]  # {"kept", "removed", "sources", "unused", "normalized"}
    report_status: Literal["written", "aborted", "failed"]


class ReadTask(TypedDict):
    """One tool call handed to the read node (one Send per call)."""

    call: dict[str, Any]  # a langchain ToolCall: {"name", "args", "id"}
    raw: str  # the call as the model wrote it, echoed in its tool response
    index: int  # position in the model's turn: tool responses go back in this order
