"""The Fathom-Search protocol: raw ChatML over SGLang ``/generate``, ``<tool_call>`` JSON in the text.

Rendering is append-only. The prompt of round k+1 is the prompt of round k, then the text the model
generated, then the next user turn, byte for byte, so SGLang's radix cache serves the whole prefix.
Token counts come from the server (``meta_info``); nothing here re-tokenizes the transcript.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call

from fathom.models.base import Generation
from fathom.models.sglang import SGLangClient
from fathom.protocols.base import (
    CLOSE_CALL,
    OPEN_CALL,
    Turn,
    TurnBudget,
    call_order,
    estimate_tokens,
    extract_answer,
    find_boxed,
    refuse_forced_calls,
    split_think,
)
from fathom.protocols.calls import TOOLS, ToolCallError, validate_call
from fathom.protocols.prompts import Prompt
from fathom.protocols.prompts import search as say
from fathom.protocols.prompts import tools as call_errors

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ASSISTANT_OPEN = f"{IM_START}assistant\n<think>"
CALL_SPAN = re.compile(re.escape(OPEN_CALL) + r"(.*?)" + re.escape(CLOSE_CALL), re.DOTALL)


def python_repr_schemas() -> str:
    """The tool list as the Fathom-Search-4B prompt shows it: a Python repr, as the model saw in training."""
    return repr([spec.as_function() for spec in TOOLS.values()])


@dataclass(frozen=True)
class ParsedCalls:
    valid: list[dict[str, Any]]  # langchain ToolCall dicts, args validated
    invalid: list[dict[str, Any]]  # langchain InvalidToolCall dicts, error addressed to the model
    notes: list[str]
    raw: dict[str, str]  # call id -> the call text as written, in order of appearance


def render_tool_result(message: ToolMessage) -> str:
    """The result string a tool call hands the model: ``result:`` on success, ``error:`` on failure."""
    label = "error" if message.status == "error" else "result"
    return f"{label}: \n{message.content}".strip()


def tool_call_text(message: ToolMessage) -> str:
    """The call as the model wrote it, echoed unchanged inside its ``<tool_response>``."""
    artifact = message.artifact if isinstance(message.artifact, dict) else {}
    raw = artifact.get("raw")
    if raw is None:
        raw = json.dumps({"name": message.name, "arguments": artifact.get("args", {})}, ensure_ascii=False)
    return raw


class FathomPromptRenderer:
    """Render the transcript as the raw ChatML text Fathom-Search-4B was trained on.

    The prompt is the system turn, then alternating user and assistant turns joined by newlines,
    ending with an open ``<|im_start|>assistant\n<think>``. A user turn holds the question, or
    the tool responses of the previous turn in call order followed by any notes to the model.
    """

    def __init__(self, system_prompt: Prompt) -> None:
        self.system = system_prompt.render(python_repr_schemas())

    def render(self, messages: list[AnyMessage], *, compact_until: int = 0) -> str:
        """The whole prompt; tool results among the first ``compact_until`` messages are elided."""
        turns = [f"{IM_START}system\n{self.system}{IM_END}"]
        pending: list[AnyMessage] = []
        for position, message in enumerate(messages):
            if isinstance(message, AIMessage):
                turns.append(_user_turn(pending))
                turns.append(f"{ASSISTANT_OPEN}{message.content}{IM_END}")
                pending = []
                continue
            if position < compact_until and isinstance(message, ToolMessage):
                message = message.model_copy(update={"content": say.ELIDED_TOOL_RESULT})
            pending.append(message)
        turns.append(_user_turn(pending))
        turns.append(ASSISTANT_OPEN)
        return "\n".join(turns)


def _user_turn(messages: list[AnyMessage]) -> str:
    return f"{IM_START}user\n" + "".join(_user_part(m) for m in _ordered(messages)) + IM_END


def _ordered(messages: list[AnyMessage]) -> list[AnyMessage]:
    """One user turn's parts: tool results in call order (they may arrive in any order), notes after them."""
    return [messages[i] for i in call_order(messages)]


def _user_part(message: AnyMessage) -> str:
    if isinstance(message, ToolMessage):
        return f"<tool_response>{tool_call_text(message)}\n{render_tool_result(message)}\n</tool_response>\n"
    return str(message.content)


def parse_tool_calls(action: str, thinking: str, *, id_prefix: str) -> ParsedCalls:
    """Find the ``<tool_call>`` blocks after ``</think>`` and check each against the allow-list."""
    notes: list[str] = []
    opens = [m.start() for m in re.finditer(re.escape(OPEN_CALL), action)]
    closes = [m.start() for m in re.finditer(re.escape(CLOSE_CALL), action)]
    if len(opens) != len(closes) or any(o > c for o, c in zip(opens, closes)):
        notes.append(say.UNPAIRED_CALL_TAGS_NOTE)
        return ParsedCalls([], [], notes, {})
    raws: dict[str, str] = {}
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for index, match in enumerate(CALL_SPAN.finditer(action)):
        raw = match.group(1).strip()
        call_id = f"{id_prefix}-{index}"
        raws[call_id] = raw
        try:
            name, args = _decode_call(raw)
            args = validate_call(name, args)
        except ToolCallError as exc:
            invalid.append(invalid_tool_call(name=_name_guess(raw), args=raw, id=call_id, error=str(exc)))
            continue
        valid.append(tool_call(name=name, args=args, id=call_id))
    if not opens and OPEN_CALL in thinking:
        notes.append(say.CALLS_IN_THINK_NOTE)
    return ParsedCalls(valid, invalid, notes, raws)


def _decode_call(raw: str) -> tuple[Any, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolCallError(call_errors.call_not_json_error(exc.msg, exc.pos)) from None
    except (ValueError, RecursionError):  # "[[[[…" past the recursion limit; an int of 5,000 digits
        raise ToolCallError(call_errors.CALL_TOO_COMPLEX_ERROR) from None
    if not isinstance(data, dict):
        raise ToolCallError(call_errors.CALL_NOT_OBJECT_ERROR)
    args = data.get("arguments", {})
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            raise ToolCallError(call_errors.ARGUMENTS_NOT_OBJECT_ERROR) from None
        except (ValueError, RecursionError):
            raise ToolCallError(call_errors.CALL_TOO_COMPLEX_ERROR) from None
    return data.get("name"), args


def _name_guess(raw: str) -> str:
    match = re.search(r'"name"\s*:\s*"([^"]{1,64})"', raw)
    return match.group(1) if match else "invalid_call"


class FathomProtocol:
    """One search turn of Fathom-Search-4B (or any ChatML model trained the same way) on SGLang."""

    name = "fathom"

    def __init__(
        self,
        client: SGLangClient,
        system_prompt: Prompt,
        *,
        temperature: float = 0.6,
        repetition_penalty: float = 1.05,
    ) -> None:
        self.client = client
        self.renderer = FathomPromptRenderer(system_prompt)
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def render(self, messages: list[AnyMessage], budget: TurnBudget | None = None) -> str:
        compact_until = _compact_boundary(messages) if budget and budget.compact else 0
        return self.renderer.render(messages, compact_until=compact_until)

    async def turn(self, messages: list[AnyMessage], budget: TurnBudget) -> Turn:
        prompt = self.render(messages, budget)
        generation = await self.client.generate(
            prompt,
            max_new_tokens=budget.max_new_tokens,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
        )
        round_no = sum(isinstance(m, AIMessage) for m in messages)
        return parse_turn(generation, messages, id_prefix=f"r{round_no}", force_answer=budget.force_answer)


def _compact_boundary(messages: list[AnyMessage]) -> int:
    """Elide every tool result except those of the latest round."""
    last_ai = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=0)
    return last_ai


def parse_turn(
    generation: Generation, messages: list[AnyMessage], *, id_prefix: str, force_answer: bool = False
) -> Turn:
    """Turn a raw completion into a transcript message plus calls, answer or notes.

    A forced turn (``force_answer``) runs no call. If it calls tools and boxes no answer, its
    calls are refused (invalid, with an error the model reads) and it has no answer: the call
    text is never taken for one.
    """
    text = generation.text
    usage = {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "cached_tokens": generation.cached_tokens,
    }
    context = generation.prompt_tokens + generation.completion_tokens
    thinking, action = split_think(text)
    notes: list[str] = []
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    raws: dict[str, str] = {}
    refused = force_answer and OPEN_CALL in action and find_boxed(action) is None
    if refused:
        parsed = parse_tool_calls(action, thinking, id_prefix=id_prefix)
        invalid, raws = refuse_forced_calls([*parsed.valid, *parsed.invalid]), parsed.raw
    elif generation.finish_reason == "length":
        notes.append(say.cut_off_note(generation.completion_tokens))
    elif not text.strip():
        notes.append(say.EMPTY_TURN_NOTE)
    elif not force_answer:
        parsed = parse_tool_calls(action, thinking, id_prefix=id_prefix)
        valid, invalid, notes, raws = parsed.valid, parsed.invalid, parsed.notes, parsed.raw
    message = AIMessage(
        content=text,
        tool_calls=valid,
        invalid_tool_calls=invalid,
        additional_kwargs={"call_order": list(raws), "raw_calls": raws} if raws else {},
        response_metadata={"finish_reason": generation.finish_reason},
    )
    turn = Turn(message, notes=notes, finish_reason=generation.finish_reason, usage=usage, context_tokens=context)
    if not refused and not valid and not invalid and (force_answer or not notes):
        earlier = [str(m.content) for m in messages if isinstance(m, AIMessage)]
        turn.answer, turn.boxed = extract_answer(split_think(text)[1] or text, earlier)
    return turn
