"""The Fathom-Synthesizer protocol: the research transcript as the writer reads it, and its reply.

The plan and write nodes stay a few lines: ``fit_trace`` budgets the transcript, ``format_trace``
and ``tool_call_list`` build the two inputs, ``render_synth_prompt`` lays out the raw ChatML prompt
(no ``<think>`` pre-fill: the synthesizer opens its own), and ``split_plan_report`` separates the
plan from the report. Nothing here talks to a model.

Unlike upstream's trace reformatting (bug S1), only our own tags are removed: text that merely
contains angle brackets (``a < b``, ``Vec<T>``, HTML quoted from a page) reaches the writer intact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from fathom.protocols.base import call_order, estimate_tokens
from fathom.protocols.prompts.files import Prompt, load_prompt_file
from fathom.protocols.prompts.synthesizer import (
    ASSISTANT_LABEL,
    DEFAULT_SYNTH_PROMPT,
    LANGUAGE_PLACEHOLDER,
    QUESTION_LABEL,
    SHORTENED,
    SYNTH_SYSTEM_PROMPT,
    SYNTH_USER_LEAD_IN,
    TOOL_CALL_PREFIX,
    USER_LABEL,
    language_line,
    search_result_heading,
    synth_user_message,
    trace_block,
)

# The wording (system prompt, lead-in, trace labels) is in fathom/protocols/prompts/synthesizer.py.
__all__ = [
    "SYNTH_SYSTEM_PROMPT", "SYNTH_USER_LEAD_IN", "fit_trace", "format_trace", "load_synth_prompt",
    "render_synth_prompt", "render_synth_user", "split_plan_report",
    "strip_leaked_think", "synth_system_prompt", "tool_call_list", "tool_calls_json", "trace_budget",
]

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
DEFAULT_LANGUAGE = "English"

# Only the tags our protocols write (and the misspelling upstream tolerated); whitespace inside the
# brackets is allowed because models emit ``</think >`` now and then.
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_CALL_TAGS = re.compile(r"<\s*/?\s*(?:tool_call|tool_response|tool_responce)\s*>", re.IGNORECASE)
# ChatML special tokens such as <|im_end|>; ordinary text never has this shape.
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")
_BLANK_RUN = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_HIT_URL = re.compile(r"^\*\*URL\*\*:\s*(https?://\S+)", re.MULTILINE)  # excerpts of search results keep their hits
_HIT_HEAD = re.compile(r"^(?:### .*|\*\*URL\*\*:.*)$", re.MULTILINE)

Estimator = Callable[[str], int]


# ---- reading the transcript ------------------------------------------------------------------


def _text(message: BaseMessage) -> str:
    """A message's text, whether its content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            parts.append(str(block.get("text") or block.get("reasoning") or ""))
    return "\n".join(p for p in parts if p)


def _artifact(message: ToolMessage) -> dict[str, Any]:
    return message.artifact if isinstance(message.artifact, dict) else {}


def _ok(message: ToolMessage) -> bool:
    artifact = _artifact(message)
    return bool(artifact["ok"]) if "ok" in artifact else message.status != "error"


def _calls_by_id(messages: list[BaseMessage]) -> dict[str, dict[str, Any]]:
    """Arguments of every structured call, by call id (for tool results without an artifact)."""
    found: dict[str, dict[str, Any]] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id") and isinstance(call.get("args"), dict):
                    found[str(call["id"])] = call["args"]
    return found


def _arguments(message: ToolMessage, known: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The call's arguments; refused calls only kept the raw text, so decode it when we can.

    Tool results made outside our read node (an embedder's) have no artifact: their call's
    arguments are found by id in ``known``.
    """
    artifact = _artifact(message)
    args = artifact.get("args")
    if isinstance(args, dict):
        return args
    if known and message.tool_call_id in known:
        return known[message.tool_call_id]
    raw = artifact.get("raw")
    if isinstance(raw, str) and raw.strip():
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return {"raw": raw}
        if isinstance(data, dict) and isinstance(data.get("arguments"), dict):
            return data["arguments"]
        return {"raw": raw}
    return {}


def _rounds(messages: list[BaseMessage]) -> Iterator[tuple[int, BaseMessage]]:
    """Messages with their positions, in reading order (see :func:`call_order`): the model saw
    each turn's tool results in call order, so the writer does too."""
    return ((position, messages[position]) for position in call_order(messages))


def _call_signature(name: str, args: dict[str, Any]) -> str:
    """``query_url(url="…", goal="…")``: the call as a reader would write it."""
    inner = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in args.items())
    return f"{name}({inner})"


def _strip_tags(text: str) -> str:
    """Remove our protocol tags and ChatML tokens; keep everything between them."""
    text = _SPECIAL_TOKEN.sub("", text)
    text = _THINK_OPEN.sub("", text)
    text = _THINK_CLOSE.sub("\n\n", text)
    return _CALL_TAGS.sub("\n", text)


def _collapse(text: str) -> str:
    return _BLANK_RUN.sub("\n\n", text).strip()


def format_trace(messages: list[BaseMessage]) -> str:
    """The transcript as readable text for the synthesizer.

    The question, each assistant turn (reasoning kept, protocol tags removed), each tool result as
    a numbered ``SEARCH RESULT`` block naming its call, and notes to the model as ``USER`` text.
    System messages are left out. Runs of three or more newlines collapse to a blank line.
    """
    blocks: list[str] = []
    question_seen = False
    number = 0
    known = _calls_by_id(messages)
    for _, message in _rounds(messages):
        if isinstance(message, ToolMessage):
            number += 1
            call = _call_signature(message.name or "tool", _arguments(message, known))
            header = search_result_heading(number, call, failed=not _ok(message))
            blocks.append(f"{header}\n{_strip_tags(_text(message))}")
        elif isinstance(message, AIMessage):
            blocks.append(trace_block(ASSISTANT_LABEL, _assistant_text(message)))
        elif isinstance(message, HumanMessage):
            label = USER_LABEL if question_seen else QUESTION_LABEL
            question_seen = True
            blocks.append(trace_block(label, _strip_tags(_text(message))))
    return _collapse("\n\n".join(_collapse(b) for b in blocks))


def _assistant_text(message: AIMessage) -> str:
    text = _text(message)
    reasoning = message.additional_kwargs.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning.strip():
        text = f"{reasoning}\n\n{text}"
    has_tagged_calls = re.search(r"<\s*tool_call\s*>", text, re.IGNORECASE) is not None
    text = _strip_tags(text)
    # Chat-protocol turns carry their calls structured, not in the text: show them too.
    calls = [*message.tool_calls, *message.invalid_tool_calls]
    if calls and not has_tagged_calls:
        lines = []
        for call in calls:
            args = call.get("args")
            shown = args if isinstance(args, dict) else {"raw": args}
            lines.append(TOOL_CALL_PREFIX + _call_signature(call.get("name") or "tool", shown))
        text = f"{text}\n\n" + "\n".join(lines)
    return text


def _result_urls(message: ToolMessage) -> list[str]:
    """URLs a successful call returned (search hits) or read (pages), as read stored them."""
    if not _ok(message):
        return []
    return _dedupe([str(s.get("url")) for s in _artifact(message).get("sources") or [] if isinstance(s, dict) and s.get("url")])


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def tool_call_list(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """Every tool call that got a result, numbered as in :func:`format_trace` (the TOOL_CALLS input).

    Each entry: ``{"n", "name", "arguments", "ok", "urls"}``; ``urls`` are those the call returned
    (search hits) or read (pages), empty for a failed call.
    """
    calls = []
    known = _calls_by_id(messages)
    for _, message in _rounds(messages):
        if isinstance(message, ToolMessage):
            calls.append(
                {
                    "n": len(calls) + 1,
                    "name": message.name or "tool",
                    "arguments": _arguments(message, known),
                    "ok": _ok(message),
                    "urls": _result_urls(message),
                }
            )
    return calls


# ---- fitting the trace into the synthesizer's context ------------------------------------------


def _latest_round_positions(messages: list[BaseMessage]) -> set[int]:
    """Positions of the tool results that answer the last turn that had any."""
    owner = -1
    by_turn: dict[int, set[int]] = {}
    for position, message in enumerate(messages):
        if isinstance(message, AIMessage):
            owner = position
        elif isinstance(message, ToolMessage):
            by_turn.setdefault(owner, set()).add(position)
    return by_turn[max(by_turn)] if by_turn else set()


def _excerpt(message: ToolMessage, head_chars: int) -> str | None:
    """A head excerpt plus a marker, or ``None`` if that would not make the result shorter.

    Search results keep their hit titles and URLs first: those are what the writer cites.
    """
    text = _text(message)
    if message.name == "search_urls" and _HIT_URL.search(text):
        head = "\n".join(_HIT_HEAD.findall(text))[:head_chars]
    else:
        head = text[:head_chars]
        cut = max(head.rfind("\n"), head.rfind(" "))
        if cut > head_chars // 2:  # end on a word boundary when one is near
            head = head[:cut]
    omitted = len(text) - len(head)
    shortened = f"{head.rstrip()}\n{SHORTENED.format(n=omitted)}".lstrip()
    return shortened if len(shortened) < len(text) else None


def _elided(message: ToolMessage) -> str | None:
    text = _text(message)
    marker = SHORTENED.format(n=len(text))
    return marker if len(marker) < len(text) else None


def fit_trace(
    messages: list[BaseMessage],
    *,
    max_tokens: int,
    estimate: Estimator = estimate_tokens,
    head_chars: int = 1200,
) -> list[BaseMessage]:
    """A copy of ``messages`` whose :func:`format_trace` fits in ``max_tokens``.

    The oldest tool results are shortened first (head excerpt plus a marker), then, if that is not
    enough, removed whole (marker only), oldest first. The question, the assistant turns, the notes
    and the latest round's tool results are never touched, so the result may still be too long:
    check it. The input list and its messages are left unchanged.
    """
    out = list(messages)
    if estimate(format_trace(out)) <= max_tokens:
        return out
    protected = _latest_round_positions(messages)
    candidates = [
        i for i, m in enumerate(messages) if isinstance(m, ToolMessage) and i not in protected
    ]
    short = {i: _excerpt(messages[i], head_chars) for i in candidates}  # type: ignore[arg-type]
    gone = {i: _elided(messages[i]) for i in candidates}  # type: ignore[arg-type]

    def variant(n_short: int, n_gone: int) -> list[BaseMessage]:
        trial = list(messages)
        for rank, i in enumerate(candidates):
            options = [short[i]] if rank < n_short else []
            if rank < n_gone:
                options.append(gone[i])
            # the shortest available form; None where cutting would not save anything
            content = min((o for o in options if o is not None), key=len, default=None)
            if content is not None:
                trial[i] = messages[i].model_copy(update={"content": content})
        return trial

    def fits(trial: list[BaseMessage]) -> bool:
        return estimate(format_trace(trial)) <= max_tokens

    # Each step only shortens text, so "fits" is monotone in how many results are cut: bisect
    # instead of re-formatting a long trace once per result.
    n = len(candidates)
    if fits(variant(n, 0)):
        return variant(_smallest(lambda k: fits(variant(k, 0)), n), 0)
    return variant(n, _smallest(lambda k: fits(variant(n, k)), n))


def _smallest(ok: Callable[[int], bool], high: int) -> int:
    """The smallest k in [0, high] with ``ok(k)``, assuming monotonicity; ``high`` if none."""
    low = 0
    while low < high:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid + 1
    return low


# ---- the prompt --------------------------------------------------------------------------------


def load_synth_prompt(prompt_file: str | Path | None = None) -> Prompt:
    """The synthesizer system prompt: the user's file (bytes unchanged) when given, else ours."""
    return load_prompt_file(prompt_file) if prompt_file else DEFAULT_SYNTH_PROMPT


def synth_system_prompt(prompt: Prompt | str | None = None, *, language: str = DEFAULT_LANGUAGE) -> str:
    """The system prompt text with the report language filled in.

    A prompt without the ``{language}`` slot (an upstream file) is left byte for byte as is in
    English; for another language one instruction line is appended, since the user asked for it.
    """
    text = prompt.text if isinstance(prompt, Prompt) else SYNTH_SYSTEM_PROMPT if prompt is None else prompt
    language = " ".join(language.split()) or DEFAULT_LANGUAGE
    if LANGUAGE_PLACEHOLDER in text:
        return text.replace(LANGUAGE_PLACEHOLDER, language)
    if language.lower() == DEFAULT_LANGUAGE.lower():
        return text
    return f"{text.rstrip()}\n\n{language_line(language)}"


def tool_calls_json(tool_calls: list[dict[str, Any]]) -> str:
    """A JSON array with one call per line, non-ASCII kept as is."""
    if not tool_calls:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in tool_calls) + "\n]"


def render_synth_user(
    question: str, trace: str, tool_calls: list[dict[str, Any]], *, lead_in: str = SYNTH_USER_LEAD_IN
) -> str:
    """The user message: lead-in, question, trace, tool calls, end marker (reference §5.2 layout)."""
    return synth_user_message(lead_in, question, trace, tool_calls_json(tool_calls))


def render_synth_prompt(
    system: str,
    question: str,
    trace: str,
    tool_calls: list[dict[str, Any]],
    *,
    lead_in: str = SYNTH_USER_LEAD_IN,
) -> str:
    """The raw ChatML prompt for SGLang ``/generate``: a newline before each ``<|im_end|>`` and
    an open assistant turn with no ``<think>`` pre-fill."""
    user = render_synth_user(question, trace, tool_calls, lead_in=lead_in)
    return (
        f"{IM_START}system\n{system}\n{IM_END}\n"
        f"{IM_START}user\n{user}\n{IM_END}\n"
        f"{IM_START}assistant\n"
    )


def trace_budget(
    *,
    context_tokens: int,
    max_new_tokens: int,
    system: str,
    question: str,
    tool_calls: list[dict[str, Any]],
    estimate: Estimator = estimate_tokens,
    margin: int = 256,
) -> int:
    """Tokens left for the trace (``fit_trace``'s ``max_tokens``) once the rest of the prompt and
    the reply are counted; ``margin`` absorbs the estimator's error."""
    frame = render_synth_prompt(system, question, "", tool_calls)
    return context_tokens - max_new_tokens - estimate(frame) - margin


# ---- the reply ---------------------------------------------------------------------------------


def split_plan_report(text: str) -> tuple[str, str]:
    """``(plan, report)``: the plan is before the first ``</think>`` (its ``<think>`` removed), the
    report after the last one. With no ``</think>`` at all: ``("", text)``."""
    closes = list(_THINK_CLOSE.finditer(text))
    if not closes:
        return "", text
    plan = text[: closes[0].start()].strip()
    opening = _THINK_OPEN.match(plan)
    if opening:
        plan = plan[opening.end() :].strip()
    return plan, text[closes[-1].end() :].strip()


def strip_leaked_think(report: str) -> str:
    """Remove ``<think>…</think>`` blocks, stray think tags and ChatML tokens from a report."""
    # Pair each opening tag with the next closing one in a single pass (a regex with a lazy
    # ".*?" would rescan to the end for every unclosed tag of a degenerate reply).
    closes = list(_THINK_CLOSE.finditer(report))
    kept: list[str] = []
    pos = next_close = 0
    for opening in _THINK_OPEN.finditer(report):
        if opening.start() < pos:
            continue
        while next_close < len(closes) and closes[next_close].start() < opening.end():
            next_close += 1
        if next_close == len(closes):
            break
        kept.append(report[pos : opening.start()])
        pos = closes[next_close].end()
    kept.append(report[pos:])
    text = _THINK_OPEN.sub("", _THINK_CLOSE.sub("", "".join(kept)))
    return _collapse(_SPECIAL_TOKEN.sub("", text))
