"""The search loop over OpenAI-style tool calling: an OpenAI-compatible server, or any chat model.

Embedders pass their own langchain-core chat model (``bind_tools``); otherwise the search model is
reached through its OpenAI-compatible ``/v1`` route. Tool calls arrive structured, so this protocol
only validates them against the allow-list.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import InvalidToolCall, ToolCall, invalid_tool_call, tool_call

from fathom.models.chat import ChatClient
from fathom.protocols.base import (
    CLOSE_CALL,
    OPEN_CALL,
    Turn,
    TurnBudget,
    estimate_tokens,
    find_boxed,
    refuse_forced_calls,
)
from fathom.protocols.calls import TOOLS, ToolCallError, validate_call
from fathom.protocols.prompts.search import EMPTY_TURN_NOTE
from fathom.protocols.prompts.tools import ARGUMENTS_NOT_JSON_ERROR, ARGUMENTS_NOT_OBJECT_ERROR


class ChatToolsProtocol:
    """One search turn through tool calling, with our system prompt in front of the transcript."""

    name = "chat"

    def __init__(self, model: ChatClient | BaseChatModel, system_prompt: str, *, temperature: float = 0.6) -> None:
        self.model = model
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.tools = [spec.as_openai_tool() for spec in TOOLS.values()]

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    async def turn(self, messages: list[AnyMessage], budget: TurnBudget) -> Turn:
        if isinstance(self.model, BaseChatModel):
            message = await self._langchain_turn(messages, budget)
        else:
            message = await self._client_turn(messages, budget)
        round_no = sum(isinstance(m, AIMessage) for m in messages)
        return _to_turn(message, force_answer=budget.force_answer, id_prefix=f"r{round_no}")

    async def _langchain_turn(self, messages: list[AnyMessage], budget: TurnBudget) -> AIMessage:
        model: Any = self.model if budget.force_answer else self.model.bind_tools(self.tools)
        reply = await model.ainvoke([SystemMessage(self.system_prompt), *messages])
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=str(getattr(reply, "content", reply)))
        return reply

    async def _client_turn(self, messages: list[AnyMessage], budget: TurnBudget) -> AIMessage:
        assert isinstance(self.model, ChatClient)
        result = await self.model.complete(
            [{"role": "system", "content": self.system_prompt}, *to_openai_messages(messages)],
            temperature=self.temperature,
            max_tokens=budget.max_new_tokens,
            tools=None if budget.force_answer else self.tools,
        )
        calls, invalid = decode_tool_calls(result.tool_calls)
        return AIMessage(
            content=result.content,
            tool_calls=calls,
            invalid_tool_calls=invalid,
            response_metadata={"finish_reason": result.finish_reason},
            usage_metadata={
                "input_tokens": result.prompt_tokens,
                "output_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
                "input_token_details": {"cache_read": result.cached_tokens},
            },
        )


def decode_tool_calls(raw_calls: list[dict[str, Any]]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """The structured calls of a chat completion (arguments as JSON text), decoded; a call whose
    arguments are not a JSON object becomes an invalid call the model is told about."""
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in raw_calls:
        try:
            args = json.loads(call["arguments"] or "{}")
        except (ValueError, RecursionError):  # not JSON; or nested past the recursion limit, a huge int
            invalid.append(
                invalid_tool_call(name=call["name"], args=call["arguments"], id=call["id"], error=ARGUMENTS_NOT_JSON_ERROR)
            )
            continue
        if not isinstance(args, dict):  # "null", "[1]": an AIMessage refuses such a call outright
            invalid.append(
                invalid_tool_call(name=call["name"], args=call["arguments"], id=call["id"], error=ARGUMENTS_NOT_OBJECT_ERROR)
            )
            continue
        calls.append(tool_call(name=call["name"], args=args, id=call["id"]))
    return calls, invalid


_CALL_TEXT = re.compile(re.escape(OPEN_CALL) + r"(.*?)(?:" + re.escape(CLOSE_CALL) + r"|$)", re.DOTALL)


def _to_turn(message: AIMessage, *, force_answer: bool, id_prefix: str = "r0") -> Turn:
    """Validate the model's calls against the allow-list and read the answer when there are none.

    A forced turn runs no call; one that calls tools (structured, or written out as text) and
    boxes no answer has its calls refused and no answer (see :func:`refuse_forced_calls`).
    """
    text = message.text if isinstance(message.content, list) else str(message.content)
    valid, invalid = [], list(message.invalid_tool_calls)
    for call in [] if force_answer else message.tool_calls:
        try:
            valid.append({**call, "args": validate_call(call["name"], call["args"])})
        except ToolCallError as exc:
            invalid.append(invalid_tool_call(name=call["name"], args=json.dumps(call["args"]), id=call["id"], error=str(exc)))
    refused = False
    if force_answer:
        written = [
            {"name": None, "args": raw.strip(), "id": f"{id_prefix}-text-{n}"} for n, raw in enumerate(_CALL_TEXT.findall(text))
        ]
        calls = [*message.tool_calls, *message.invalid_tool_calls, *written]
        refused = bool(calls) and find_boxed(text) is None
        invalid = refuse_forced_calls(calls) if refused else []
    ids = [c["id"] for c in message.tool_calls if c["id"]] + [c["id"] for c in message.invalid_tool_calls if c["id"]]
    ids += [c["id"] for c in invalid if c["id"] and c["id"] not in ids]
    message = message.model_copy(
        update={
            "tool_calls": valid,
            "invalid_tool_calls": invalid,
            "additional_kwargs": {**message.additional_kwargs, "call_order": ids},
        }
    )
    usage = message.usage_metadata or {}
    prompt_tokens = int(usage.get("input_tokens", 0))
    completion_tokens = int(usage.get("output_tokens", 0))
    turn = Turn(
        message,
        finish_reason=str(message.response_metadata.get("finish_reason", "stop")),
        usage={
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cached_tokens": int((usage.get("input_token_details") or {}).get("cache_read", 0)),
        },
        context_tokens=prompt_tokens + completion_tokens,
    )
    if not refused and not valid and not invalid:
        if text.strip():
            boxed = find_boxed(text)
            turn.answer, turn.boxed = (boxed, True) if boxed else (text.strip(), False)
        else:
            turn.notes.append(EMPTY_TURN_NOTE)
    return turn


def to_openai_messages(messages: list[AnyMessage]) -> list[dict[str, Any]]:
    """The transcript in OpenAI chat format; invalid calls are kept so every tool reply has its call."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AIMessage):
            calls = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
                for c in message.tool_calls
            ] + [
                {"id": c["id"], "type": "function", "function": {"name": c["name"] or "invalid_call", "arguments": c["args"] or ""}}
                for c in message.invalid_tool_calls
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": str(message.content)}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif isinstance(message, ToolMessage):
            label = "error" if message.status == "error" else "result"
            out.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": f"{label}: {message.content}"})
        elif isinstance(message, HumanMessage):
            out.append({"role": "user", "content": str(message.content)})
    return out
