"""The ``legacy`` protocol: II-Search-4B and Jan-Nano, evaluated upstream in Fathom-Search's loop.

Same raw ChatML, same ``<tool_call>`` JSON and the same system prompt as
:mod:`fathom.protocols.fathom` (so the same append-only rendering), but the tools the prompt shows
are ``web_search(query)`` and ``web_visit(url)``. They map to our tools: ``web_search`` is
``search_urls``; ``web_visit`` is ``read_page``, the page's own text cut to what fits the model's
context (upstream returned up to 400,000 characters and overflowed 32K contexts). The model's
call text is echoed in its ``<tool_response>`` unchanged, so it reads back the names it wrote.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call

from fathom.models.base import Generation
from fathom.models.sglang import SGLangClient
from fathom.protocols.base import Turn, TurnBudget, estimate_tokens
from fathom.protocols.calls import ToolCallError
from fathom.protocols.fathom import FathomPromptRenderer, parse_turn
from fathom.protocols.prompts import Prompt
from fathom.protocols.prompts import baselines as say
from fathom.protocols.prompts import tools as call_errors
from fathom.protocols.prompts.search import FORCED_CALL_ERROR
from fathom.tools.specs import MAX_TEXT_ARG, ToolSpec

LEGACY_TOOLS: dict[str, ToolSpec] = {
    "web_search": ToolSpec(
        "web_search",
        say.WEB_SEARCH_DESCRIPTION,
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    ),
    "web_visit": ToolSpec(
        "web_visit",
        say.WEB_VISIT_DESCRIPTION,
        {
            "type": "object",
            "properties": {"url": {"type": "string", "description": say.WEB_VISIT_URL_DESCRIPTION}},
            "required": ["url"],
        },
    ),
}
MAX_PAGE_CHARS = 400_000  # upstream's own cap; the context is usually the tighter one
MIN_PAGE_CHARS = 2_000
CHARS_PER_TOKEN = 3  # as estimate_tokens counts: a page cut this way fits the tokens it was given
SAFETY_TOKENS = 100


def legacy_schemas() -> str:
    """The legacy tool list as the system prompt shows it (a Python repr, as upstream did)."""
    return repr([spec.as_function() for spec in LEGACY_TOOLS.values()])


class LegacyRenderer(FathomPromptRenderer):
    """The Fathom layout, with the legacy tools in the system prompt."""

    def __init__(self, system_prompt: Prompt) -> None:
        self.system = system_prompt.render(legacy_schemas())


def validate_legacy_call(name: Any, arguments: Any) -> tuple[str, str]:
    """Check a legacy call; returns ``(tool, argument)`` or raises :class:`ToolCallError`."""
    if not isinstance(name, str) or name not in LEGACY_TOOLS:
        raise ToolCallError(call_errors.unknown_tool_error(name, ", ".join(LEGACY_TOOLS)))
    if not isinstance(arguments, dict):
        raise ToolCallError(call_errors.tool_arguments_not_object_error(name))
    (key,) = LEGACY_TOOLS[name].parameters["required"]
    unknown = sorted(set(arguments) - {key})
    if unknown:
        raise ToolCallError(call_errors.unknown_arguments_error(name, ", ".join(unknown), key))
    if key not in arguments:
        raise ToolCallError(call_errors.missing_arguments_error(name, key))
    value = arguments[key]
    if not isinstance(value, str) or not value.strip():
        raise ToolCallError(call_errors.empty_string_error(name, key))
    if len(value) > MAX_TEXT_ARG:
        raise ToolCallError(call_errors.too_long_error(name, key, MAX_TEXT_ARG))
    return name, value.strip()


def page_cap(generation: Generation, visits: int, *, context_tokens: int, reserve_tokens: int) -> int:
    """Characters each page of this turn may have: half the room left in the context after this
    turn (the rest is for the model's next turns), shared by the turn's page reads."""
    used = generation.prompt_tokens + generation.completion_tokens
    room = max(0, context_tokens - used - reserve_tokens - SAFETY_TOKENS)
    share = room // 2 // max(1, visits)
    return max(MIN_PAGE_CHARS, min(MAX_PAGE_CHARS, share * CHARS_PER_TOKEN))


class LegacyProtocol:
    """One turn of II-Search-4B or Jan-Nano on SGLang, in Fathom-Search's loop."""

    name = "legacy"

    def __init__(
        self,
        client: SGLangClient,
        system_prompt: Prompt,
        *,
        context_tokens: int = 40960,
        reserve_tokens: int = 2048,
        temperature: float = 0.6,
        repetition_penalty: float = 1.05,
        top_k: int = 10,
    ) -> None:
        self.client = client
        self.renderer = LegacyRenderer(system_prompt)
        self.context_tokens = context_tokens
        self.reserve_tokens = reserve_tokens
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        self.top_k = top_k

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def render(self, messages: list[AnyMessage], budget: TurnBudget | None = None) -> str:
        compact_until = 0
        if budget and budget.compact:  # elide every tool result but the latest round's
            compact_until = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=0)
        return self.renderer.render(messages, compact_until=compact_until)

    async def turn(self, messages: list[AnyMessage], budget: TurnBudget) -> Turn:
        generation = await self.client.generate(
            self.render(messages, budget),
            max_new_tokens=budget.max_new_tokens,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
        )
        round_no = sum(isinstance(m, AIMessage) for m in messages)
        turn = parse_turn(generation, messages, id_prefix=f"r{round_no}", force_answer=budget.force_answer)
        return self._map_calls(turn, generation)

    def _map_calls(self, turn: Turn, generation: Generation) -> Turn:
        """Check the calls as legacy calls (the Fathom parser found them, against its own tools)
        and map them to ours; a forced turn's refused calls stay refused."""
        message = turn.message
        raws: dict[str, str] = message.additional_kwargs.get("raw_calls", {})
        calls = [*message.tool_calls, *message.invalid_tool_calls]
        if not calls or any(c.get("error") == FORCED_CALL_ERROR for c in message.invalid_tool_calls):
            return turn
        decoded: list[tuple[str, str, str] | tuple[str, None, str]] = []
        for call_id, raw in raws.items():
            try:
                name, value = validate_legacy_call(*_decode(raw))
                decoded.append((call_id, name, value))
            except ToolCallError as exc:
                decoded.append((call_id, None, str(exc)))
        visits = sum(1 for _, name, _ in decoded if name == "web_visit")
        cap = page_cap(generation, visits, context_tokens=self.context_tokens, reserve_tokens=self.reserve_tokens)
        valid, invalid = [], []
        for call_id, name, value in decoded:
            if name == "web_search":
                valid.append(tool_call(name="search_urls", args={"query": value, "top_k": self.top_k}, id=call_id))
            elif name == "web_visit":
                valid.append(tool_call(name="read_page", args={"url": value, "max_chars": cap}, id=call_id))
            else:
                invalid.append(invalid_tool_call(name=_name_of(raws[call_id]), args=raws[call_id], id=call_id, error=value))
        turn.message = message.model_copy(update={"tool_calls": valid, "invalid_tool_calls": invalid})
        return turn


def _decode(raw: str) -> tuple[Any, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        msg, pos = (exc.msg, exc.pos) if isinstance(exc, json.JSONDecodeError) else ("unreadable", 0)
        raise ToolCallError(call_errors.call_not_json_error(msg, pos)) from None
    if not isinstance(data, dict):
        raise ToolCallError(call_errors.CALL_NOT_OBJECT_ERROR)
    args = data.get("arguments", {})
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            raise ToolCallError(call_errors.ARGUMENTS_NOT_OBJECT_ERROR) from None
    return data.get("name"), args


def _name_of(raw: str) -> str:
    try:
        name = json.loads(raw).get("name")
    except (ValueError, RecursionError, AttributeError):
        return "invalid_call"
    return name if isinstance(name, str) and name else "invalid_call"
