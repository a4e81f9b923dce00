"""The Fathom-Search protocol: exact prompt bytes, append-only rendering, robust parsing."""

from __future__ import annotations

import hashlib

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from fathom.models.base import Generation
from fathom.protocols.base import extract_answer, find_boxed, refused_call_responses
from fathom.protocols.fathom import FathomPromptRenderer, parse_turn, python_repr_schemas
from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT, load_prompt_file

SEARCH_CALL = '{"name": "search_urls", "arguments": {"query": "rosenblatt award 2010"}}'
READ_CALL = '{"name": "query_url", "arguments": {"url": "https://example.org/a", "goal": "who won"}}'


def gen(text: str, finish: str = "stop", prompt_tokens: int = 100, completion_tokens: int = 20) -> Generation:
    return Generation(text, finish, prompt_tokens, completion_tokens, cached_tokens=prompt_tokens // 2)


def turn_of(text: str, history=None, **kw):
    return parse_turn(gen(text, **kw), history or [HumanMessage("q")], id_prefix="r0")


def tool_result(call_id: str, raw: str, index: int, content: str, ok: bool = True) -> ToolMessage:
    return ToolMessage(
        content=content,
        tool_call_id=call_id,
        name="search_urls",
        status="success" if ok else "error",
        artifact={"index": index, "raw": raw},
    )


@pytest.fixture
def renderer() -> FathomPromptRenderer:
    return FathomPromptRenderer(DEFAULT_SEARCH_PROMPT)


def test_first_prompt_is_chatml_with_think_prefill(renderer):
    prompt = renderer.render([HumanMessage("Who received the award?")])
    assert prompt.startswith("<|im_start|>system\n")
    assert python_repr_schemas() in prompt
    assert prompt.endswith(
        "<|im_end|>\n<|im_start|>user\nWho received the award?<|im_end|>\n<|im_start|>assistant\n<think>"
    )


def test_round_trip_layout_matches_upstream_bytes(renderer):
    generated = f"reasoning</think>\n\n<tool_call>\n{SEARCH_CALL}\n</tool_call>"
    turn = turn_of(generated)
    call_id = turn.message.tool_calls[0]["id"]
    messages = [HumanMessage("q"), turn.message, tool_result(call_id, SEARCH_CALL, 0, "### 1. Title\n**URL**: https://x")]
    prompt = renderer.render(messages)
    expected_tail = (
        "<|im_start|>assistant\n<think>" + generated + "<|im_end|>\n"
        "<|im_start|>user\n<tool_response>" + SEARCH_CALL + "\nresult: \n### 1. Title\n**URL**: https://x\n"
        "</tool_response>\n<|im_end|>\n<|im_start|>assistant\n<think>"
    )
    assert prompt.endswith(expected_tail)


def test_rendering_is_append_only_across_rounds(renderer):
    """The prompt of round k+1 starts with the prompt of round k, byte for byte."""
    messages = [HumanMessage("q")]
    prompts = [renderer.render(messages)]
    script = [
        f"a</think>\n<tool_call>\n{SEARCH_CALL}\n</tool_call>\n<tool_call>\n{READ_CALL}\n</tool_call>",
        "b</think>\n<tool_call>\n{not json}\n</tool_call>",
        "c</think>\n<tool_call>\n" + SEARCH_CALL,  # unbalanced: a note follows
        "",  # empty turn: a note follows
        "d</think>\nThe answer is \\boxed{Michio Sugeno}",
    ]
    for round_no, text in enumerate(script):
        turn = parse_turn(gen(text), messages, id_prefix=f"r{round_no}")
        messages.append(turn.message)
        messages.extend(refused_call_responses(turn.message))
        # Results of parallel calls arrive in any order; they are rendered in call order.
        for index, call in reversed(list(enumerate(turn.message.tool_calls))):
            raw = turn.message.additional_kwargs["raw_calls"][call["id"]]
            messages.append(tool_result(call["id"], raw, index, f"result {round_no}.{index}"))
        if turn.notes:
            messages.append(HumanMessage(" ".join(turn.notes)))
        prompt = renderer.render(messages)
        assert prompt.startswith(prompts[-1]), f"round {round_no} rewrote its prefix"
        prompts.append(prompt)
    first_round = prompts[1]
    assert first_round.index("result 0.0") < first_round.index("result 0.1")


def test_several_calls_parse_in_order():
    turn = turn_of(f"plan</think>\n<tool_call>\n{SEARCH_CALL}\n</tool_call>\n<tool_call>{READ_CALL}</tool_call>")
    assert [c["name"] for c in turn.message.tool_calls] == ["search_urls", "query_url"]
    assert turn.message.tool_calls[1]["args"] == {"url": "https://example.org/a", "goal": "who won"}
    assert turn.answer is None and not turn.notes


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("{not json}", "not valid JSON"),
        ('{"name": "run_python", "arguments": {"code": "1"}}', "unknown tool 'run_python'"),
        ('{"name": "query_url", "arguments": {"url": "https://a.org"}}', "needs the argument(s) goal"),
        ('{"name": "search_urls", "arguments": {"query": "x", "top_k": "many"}}', "top_k must be an integer"),
        ('["search_urls"]', "must be a JSON object"),
        ('{"name": "search_urls", "arguments": {"query": ""}}', "non-empty string"),
    ],
)
def test_bad_calls_become_tool_errors_for_the_model(body, fragment):
    turn = turn_of(f"x</think>\n<tool_call>\n{body}\n</tool_call>")
    assert not turn.message.tool_calls
    [bad] = turn.message.invalid_tool_calls
    assert fragment in bad["error"]
    [error] = refused_call_responses(turn.message)
    assert error.status == "error" and fragment in error.content
    assert error.artifact["raw"] == body  # echoed unchanged in the tool response


def test_double_encoded_arguments_are_accepted():
    turn = turn_of('x</think><tool_call>{"name": "search_urls", "arguments": "{\\"query\\": \\"q\\"}"}</tool_call>')
    assert turn.message.tool_calls[0]["args"] == {"query": "q"}


def test_unbalanced_tags_run_nothing_and_say_why():
    turn = turn_of(f"x</think>\n<tool_call>\n{SEARCH_CALL}\n</tool_call>\n</tool_call>")
    assert not turn.has_calls and turn.answer is None
    assert "do not pair up" in turn.notes[0]


def test_call_inside_think_is_not_run():
    turn = turn_of(f"maybe <tool_call>{SEARCH_CALL}</tool_call> hmm</think>\nI need to search.")
    assert not turn.has_calls and turn.answer is None
    assert "inside <think>" in turn.notes[0]


def test_empty_and_cut_off_completions_become_notes():
    empty = turn_of("")
    assert empty.answer is None and "empty" in empty.notes[0]
    cut = turn_of(f"long thoughts</think>\n<tool_call>\n{SEARCH_CALL}", finish="length", completion_tokens=512)
    assert not cut.has_calls and cut.answer is None
    assert "cut off after 512 tokens" in cut.notes[0]


def test_forced_turn_ignores_calls_and_reads_an_answer():
    generation = gen(f"x</think><tool_call>{SEARCH_CALL}</tool_call> best guess \\boxed{{42}}")
    turn = parse_turn(generation, [HumanMessage("q")], id_prefix="r9", force_answer=True)
    assert not turn.has_calls and turn.answer == "42" and turn.boxed


def test_a_forced_turn_that_calls_tools_is_refused_never_answered(renderer):
    """The call text of a forced turn is never its answer: the calls are refused for the model to read."""
    from fathom.protocols.prompts.search import FORCED_CALL_ERROR

    text = f"x</think>\n<tool_call>\n{SEARCH_CALL}\n</tool_call>\n<tool_call>{{bad json}}</tool_call> I think 42"
    turn = parse_turn(gen(text), [HumanMessage("q")], id_prefix="r9", force_answer=True)
    assert turn.answer is None and not turn.message.tool_calls and not turn.notes
    assert [c["error"] for c in turn.message.invalid_tool_calls] == [FORCED_CALL_ERROR] * 2
    responses = refused_call_responses(turn.message)
    prompt = renderer.render([HumanMessage("q"), turn.message, *responses])
    assert prompt.count(f"error: \n[error] {FORCED_CALL_ERROR}") == 2
    assert f"<tool_response>{SEARCH_CALL}\n" in prompt  # each refusal echoes its call
    unpaired = parse_turn(gen(f"x</think>\n<tool_call>\n{SEARCH_CALL}"), [HumanMessage("q")], id_prefix="r9", force_answer=True)
    assert unpaired.answer is None and not unpaired.has_calls


def test_answer_comes_from_assistant_text_only():
    # The system prompt's worked example (\boxed{100C}) must never become the answer.
    turn = turn_of("done</think>\nI could not find it.")
    assert turn.answer == "I could not find it." and not turn.boxed
    assert "100C" not in turn.answer


def test_boxed_extraction_matches_braces_and_falls_back_to_earlier_turns():
    assert find_boxed("x \\boxed{f(\\{a\\}) = {b}} y") == "f(\\{a\\}) = {b}"
    assert find_boxed("\\boxed{first} then \\boxed{second}") == "second"
    assert find_boxed("no answer \\boxed{unclosed") is None
    assert extract_answer("final words", ["old \\boxed{Sugeno}"]) == ("Sugeno", True)
    answer, boxed = extract_answer("z" * 300, [])
    assert answer == "z" * 200 and not boxed


def test_prompt_file_is_used_byte_for_byte(tmp_path, renderer):
    raw = "\n    Custom prompt with {func_schemas} and \\boxed{} \r\n    "
    path = tmp_path / "prompt.txt"
    path.write_bytes(raw.encode())
    prompt = load_prompt_file(path)
    assert prompt.sha256 == hashlib.sha256(raw.encode()).hexdigest()
    rendered = FathomPromptRenderer(prompt).render([HumanMessage("q")])
    assert rendered.startswith("<|im_start|>system\n\n    Custom prompt with [{'name': 'search_urls'")
    assert "\\boxed{} \r\n    <|im_end|>" in rendered


def test_prompt_file_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="cannot read prompt file"):
        load_prompt_file(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_prompt_file(bad)


def test_ai_message_keeps_the_raw_generation():
    text = "thinking</think>\nanswer \\boxed{x}"
    turn = turn_of(text)
    assert isinstance(turn.message, AIMessage) and turn.message.content == text
    assert turn.usage == {"prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 50}
