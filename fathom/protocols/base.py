"""What every search-model protocol produces for one turn, and how a final answer is read.

A protocol speaks to one model family: it turns the canonical transcript (langchain-core
messages) into whatever the model reads, and the model's reply into an ``AIMessage`` carrying
valid ``tool_calls`` and ``invalid_tool_calls``, or a final answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, ToolMessage
from langchain_core.messages.tool import InvalidToolCall, invalid_tool_call

from fathom.protocols.prompts.search import FORCED_CALL_ERROR
from fathom.protocols.prompts.tools import INVALID_CALL_ERROR

ANSWER_FALLBACK_CHARS = 200
OPEN_CALL, CLOSE_CALL = "<tool_call>", "</tool_call>"  # how Fathom-Search writes a call in text


@dataclass(frozen=True)
class TurnBudget:
    """How much the model may write this turn, and whether it must answer now."""

    max_new_tokens: int
    force_answer: bool = False
    compact: bool = False  # elide old tool results to fit the context (breaks the prefix once)


@dataclass
class Turn:
    """One model turn, parsed.

    ``message`` goes into the transcript as is. ``notes`` are problems the model must hear about
    (unbalanced tags, a cut-off turn); with no calls and no answer they become its next user turn.
    """

    message: AIMessage
    answer: str | None = None
    boxed: bool = False
    notes: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)  # prompt/completion/cached tokens
    context_tokens: int = 0  # prompt + completion tokens as the server counted them

    @property
    def has_calls(self) -> bool:
        return bool(self.message.tool_calls or self.message.invalid_tool_calls)


class SearchProtocol(Protocol):
    """One turn of a search model over the transcript."""

    name: str

    async def turn(self, messages: list[AnyMessage], budget: TurnBudget) -> Turn: ...

    def estimate_tokens(self, text: str) -> int: ...


def call_index(message: ToolMessage) -> int:
    """The position of a tool result's call in its turn (read stores it on the result)."""
    artifact = message.artifact if isinstance(message.artifact, dict) else {}
    return int(artifact.get("index", 0))


def call_order(messages: Sequence[BaseMessage]) -> list[int]:
    """Positions of ``messages`` in reading order: between two model turns, the tool results by
    the position of their call (the calls run concurrently, so results land in any order), then
    the notes. Model turns stay where they are."""
    order: list[int] = []
    group: list[int] = []

    def flush() -> None:
        tools = [i for i in group if isinstance(messages[i], ToolMessage)]
        order.extend(sorted(tools, key=lambda i: call_index(messages[i])))  # type: ignore[arg-type]
        order.extend(i for i in group if not isinstance(messages[i], ToolMessage))
        group.clear()

    for position, message in enumerate(messages):
        if isinstance(message, AIMessage):
            flush()
            order.append(position)
        else:
            group.append(position)
    flush()
    return order


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``, conservatively (~3 characters a token): budgets err towards room."""
    return len(text) // 3 + 1


# ---- answers ----------------------------------------------------------------------------------


def find_boxed(text: str) -> str | None:
    """The content of the last brace-matched ``\\boxed{…}`` (or ``\\fbox{…}``) in ``text``."""
    matches: dict[int, int] | None = None
    for macro in ("\\boxed", "\\fbox"):
        start = text.rfind(macro + "{")
        while start != -1:
            if matches is None:
                matches = _brace_matches(text)
            close = matches.get(start + len(macro))
            if close is not None:
                return text[start + len(macro) + 1 : close].strip()
            start = text.rfind(macro + "{", 0, start)
    return None


_BRACES = re.compile(r"[{}]")


def _brace_matches(text: str) -> dict[int, int]:
    """The position of each ``{`` in ``text`` that is closed, mapped to its ``}``.

    One pass for all of them: matching each candidate on its own rescans the rest of the text, and
    a turn of thousands of unclosed ``\\boxed{`` took minutes (found by fuzzing).
    """
    matches: dict[int, int] = {}
    opened: list[int] = []
    for brace in _BRACES.finditer(text):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            matches[opened.pop()] = brace.start()
    return matches


def extract_answer(final_text: str, earlier_texts: list[str]) -> tuple[str, bool]:
    """The answer of a run, read from assistant text only (never the system prompt).

    Brace-matched ``\\boxed{}`` in the final turn first, then the last boxed answer in any earlier
    assistant turn; failing both, the last 200 characters of the final turn, flagged unboxed.
    """
    for text in [final_text, *reversed(earlier_texts)]:
        boxed = find_boxed(text)
        if boxed:
            return boxed, True
    return final_text.strip()[-ANSWER_FALLBACK_CHARS:].strip(), False


def split_think(text: str) -> tuple[str, str]:
    """Split a turn into (thinking, action): the action is what follows the last ``</think>``."""
    cut = text.rfind("</think>")
    if cut == -1:
        return "", text
    return text[:cut], text[cut + len("</think>") :]


def refuse_forced_calls(calls: list[Any]) -> list[InvalidToolCall]:
    """The calls of a forced turn (it had to answer), each refused with an error the model reads.

    A forced turn that calls tools never has its text read as the answer: the calls get these
    errors as their tool responses and the model is asked once more (see ``nodes/search.py``).
    """
    refused = []
    for call in calls:
        args = call.get("args")
        text = args if isinstance(args, str) or args is None else json.dumps(args, ensure_ascii=False)
        refused.append(invalid_tool_call(name=call.get("name"), args=text, id=call.get("id"), error=FORCED_CALL_ERROR))
    return refused


def refused_call_responses(message: AIMessage) -> list[ToolMessage]:
    """A tool response for every call that will not run, in the model's own call order."""
    order = message.additional_kwargs.get("call_order", [])
    # Each id's first position, looked up once: "order.index" per call was quadratic, and a turn of
    # 20,000 refused calls took seconds (found by fuzzing).
    positions: dict[str, int] = {}
    for index, known in enumerate(order):
        positions.setdefault(known, index)
    raws = message.additional_kwargs.get("raw_calls", {})
    errors = []
    for position, call in enumerate(message.invalid_tool_calls):
        call_id = call.get("id") or f"invalid-{position}"
        errors.append(
            ToolMessage(
                content=f"[error] {call.get('error') or INVALID_CALL_ERROR}",
                tool_call_id=call_id,
                name=call.get("name") or "invalid_call",
                status="error",
                artifact={
                    "index": positions.get(call_id, len(order) + position),
                    "raw": raws.get(call_id, call.get("args") or ""),
                    "ok": False,
                },
            )
        )
    return errors
