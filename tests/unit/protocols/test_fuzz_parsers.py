"""Fuzzing the search-model output parsers: whatever a model writes (unbalanced tags, nested or
invalid JSON, calls inside ``<think>``, lone surrogate escapes, thousands of ``\\boxed{``) becomes
a valid turn or a clear note to the model, never an exception.

A few hundred generated cases here; ``bench/fuzz.py`` runs 10,000 a target with megabyte input.
The examples that found bugs are pinned below the properties.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage

from fathom.models.base import ChatResult, Generation
from fathom.protocols.base import OPEN_CALL, Turn, find_boxed, refused_call_responses, split_think
from fathom.protocols.calls import TOOLS, validate_call
from fathom.protocols.chat import _to_turn, decode_tool_calls
from fathom.protocols.fathom import FathomPromptRenderer, parse_turn
from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT
from tests.support.fuzz import CALL_BODIES, TEXT, completions

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)
RENDERER = FathomPromptRenderer(DEFAULT_SEARCH_PROMPT)
FINISH = st.sampled_from(["stop", "length", "abort"])


def check_turn(turn: Turn, *, missed: bool = False) -> None:
    """What every parsed turn must be: runnable calls, refused calls with a reason, an answer, or a
    note to the model; and whatever it holds can be sent, stored and rendered again.

    ``missed``: a forced turn that wrote call tags and no answer may hold nothing: it is a miss,
    and the search node asks again with the note that it must answer now.
    """
    message = turn.message
    assert turn.has_calls or turn.answer is not None or turn.notes or missed, "a turn with nothing for the model to go on"
    assert all(isinstance(note, str) and note.strip() for note in turn.notes)
    ids = [call["id"] for call in [*message.tool_calls, *message.invalid_tool_calls]]
    assert len(ids) == len(set(ids)), "two calls share an id"
    for call in message.tool_calls:
        assert call["name"] in TOOLS
        assert validate_call(call["name"], call["args"]) == call["args"]  # already clean
        json.dumps(call["args"], ensure_ascii=False).encode("utf-8")  # a request body and a cache key
    for call in message.invalid_tool_calls:
        assert isinstance(call["error"], str) and call["error"].strip()
    responses = refused_call_responses(message)
    assert [r.tool_call_id for r in responses] == [c["id"] or f"invalid-{n}" for n, c in enumerate(message.invalid_tool_calls)]
    assert all(r.status == "error" and r.content.startswith("[error] ") for r in responses)


def check_fathom(text: str, finish: str, force: bool) -> Turn:
    """Parse ``text`` as a Fathom-Search turn; the transcript keeps it verbatim and renders append-only."""
    history = [HumanMessage("When did the Kestrel Bridge open?")]
    turn = parse_turn(Generation(text, finish, 100, 20), history, id_prefix="r0", force_answer=force)  # type: ignore[arg-type]
    check_turn(turn, missed=force and OPEN_CALL in split_think(text)[1])
    assert turn.message.content == text
    if force:
        assert not turn.message.tool_calls, "a forced turn ran a call"
    before = RENDERER.render(history)
    after = RENDERER.render([*history, turn.message, *refused_call_responses(turn.message)])
    assert after.startswith(before)
    return turn


@FUZZ
@given(completions(), FINISH, st.booleans())
def test_any_completion_is_a_turn_or_a_note(text: str, finish: str, force: bool) -> None:
    check_fathom(text, finish, force)


def check_chat(content: str, raw_calls: list[tuple[str, str]], force: bool) -> Turn:
    """Structured calls of a chat completion, decoded then validated like the ``chat`` protocol does."""
    result = ChatResult(content, [{"id": f"c{n}", "name": name, "arguments": args} for n, (name, args) in enumerate(raw_calls)])
    calls, invalid = decode_tool_calls(result.tool_calls)
    turn = _to_turn(AIMessage(content=result.content, tool_calls=calls, invalid_tool_calls=invalid), force_answer=force)
    check_turn(turn)
    if force:
        assert not turn.message.tool_calls
    return turn


@FUZZ
@given(completions(), st.lists(st.tuples(st.sampled_from(["search_urls", "query_url", "nope"]), CALL_BODIES | TEXT), max_size=3),
       st.booleans())
def test_any_chat_reply_is_a_turn_or_a_note(content: str, raw_calls: list[tuple[str, str]], force: bool) -> None:
    check_chat(content, raw_calls, force)


# ---- the cases fuzzing found (each was an exception or minutes of CPU before its fix) ----------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"name": "search_urls", "arguments": {"query": "x", "top_k": "²"}}', "top_k must be an integer"),
        ('{"name": "search_urls", "arguments": {"query": "x", "top_k": "' + "9" * 5000 + '"}}', "top_k must be an integer"),
        ('{"name": "search_urls", "arguments": {"query": "x", "top_k": ' + "9" * 5000 + "}}", "holds a number too long"),
        ("[" * 100_000, "nests too deeply"),
        ('{"name": "search_urls", "arguments": "' + "[" * 100_000 + '"}', "nests too deeply"),
        ('{"name": "search_urls", "arguments": {"query": "kestrel \\ud800"}}', "unpaired surrogate"),
    ],
)
def test_calls_that_crashed_the_parser_are_refused_with_a_reason(body: str, error: str) -> None:
    turn = check_fathom(f"plan</think>\n<tool_call>\n{body}\n</tool_call>", "stop", False)
    [refused] = turn.message.invalid_tool_calls
    assert error in refused["error"]


def test_structured_arguments_nested_past_the_recursion_limit_are_refused() -> None:
    turn = check_chat("", [("search_urls", "[" * 100_000), ("search_urls", '{"query": "kestrel"}')], False)
    assert [c["args"] for c in turn.message.tool_calls] == [{"query": "kestrel"}]
    assert "not valid JSON" in turn.message.invalid_tool_calls[0]["error"]


@pytest.mark.parametrize("arguments", ["null", "[1]", "3", '"query"'])
def test_structured_arguments_that_are_no_object_are_refused(arguments: str) -> None:
    """They used to fail the AIMessage itself (a pydantic error): the whole turn was lost."""
    turn = check_chat("", [("search_urls", arguments)], False)
    assert "must be a JSON object" in turn.message.invalid_tool_calls[0]["error"]


def test_thousands_of_unclosed_boxes_are_read_in_one_pass() -> None:
    """Each unclosed ``\\boxed{`` used to rescan the rest of the turn: 20,000 of them took 87 s."""
    text = "\\boxed{" * 200_000 + "\\boxed{Sugeno}" + "{" * 100_000
    assert find_boxed(text) == "Sugeno"
    assert find_boxed("\\boxed{a{b}c} then \\boxed{unclosed") == "a{b}c"
    assert find_boxed("\\fbox{x} \\boxed{y") == "x"


def test_every_call_of_a_long_forced_turn_is_refused_in_its_own_place() -> None:
    """Found by the long fuzz run: each refused call looked its position up in the list of all of
    them, so a forced turn of 20,000 calls took seconds to answer."""
    call = '<tool_call>{"name": "search_urls", "arguments": {"query": "kestrel"}}</tool_call>'
    turn = check_fathom("plan</think>" + call * 3_000, "stop", True)
    responses = refused_call_responses(turn.message)
    assert [r.artifact["index"] for r in responses] == list(range(3_000))
