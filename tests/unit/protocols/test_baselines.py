"""The baseline protocols turn by turn: what each model reads (layouts, append-only), what its
output becomes (one search, an answer, or a note), without a server."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from fathom.models.base import Generation
from fathom.protocols.fathom import parse_turn
from fathom.protocols.legacy import LegacyProtocol, legacy_schemas, page_cap
from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT
from fathom.protocols.prompts import baselines as say
from fathom.protocols.tagged import (
    MAIN_PROMPTS,
    R1SearcherProtocol,
    SearchO1Protocol,
    ZeroSearchProtocol,
    find_answer,
    snippet_window,
)

Q = "When did the Kestrel Bridge open?"


def gen(text: str, matched: str | int | None = 151645, finish: str = "stop", prompt_tokens: int = 500) -> Generation:
    return Generation(text, finish, prompt_tokens, len(text) // 4 + 1, 0, matched)  # type: ignore[arg-type]


def make(cls):
    return cls(None, MAIN_PROMPTS[cls.format.name])  # rendering and parsing need no client


def tool_result(call_id: str, query: str, content: str, data: dict | None = None, ok: bool = True) -> ToolMessage:
    return ToolMessage(content=content, tool_call_id=call_id, name="search_pages", status="success" if ok else "error",
                       artifact={"index": 0, "raw": query, "ok": ok, "data": data or {"hits": [], "pages": []}})


def test_r1_searcher_searches_wikipedia_and_reads_back_the_stored_summary():
    proto = make(R1SearcherProtocol)
    start = proto.render([HumanMessage(Q)])
    assert start == (f"<|im_start|>system\n{say.R1_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{Q}<|im_end|>\n"
                     "<|im_start|>assistant\n<think>")
    # The server cut the stop string off: it is put back as the model wrote it.
    turn = proto.parse(gen("I should look it up. <|begin_of_query|> Kestrel Bridge opened", " <|end_of_query|>"),
                       [HumanMessage(Q)])
    (call,) = turn.message.tool_calls
    assert call["name"] == "search_pages" and call["args"]["query"] == "Kestrel Bridge opened site:en.wikipedia.org"
    assert call["args"]["host"] == "en.wikipedia.org" and call["args"]["read"] == 3
    assert turn.message.content.endswith("opened <|end_of_query|>") and turn.answer is None
    result = tool_result(call["id"], "Kestrel Bridge opened", "page text")
    first = proto.render([HumanMessage(Q), turn.message, result], "It opened on 14 June 1897.")
    assert first.startswith(start + turn.message.content)
    assert first.endswith("<|im_end|><|im_start|>user\n<|begin_of_documents|>\nIt opened on 14 June 1897.\n"
                          "<|end_of_documents|>\n\n<|im_end|><|im_start|>assistant\n<think>")
    # Next round: the summary is read from the turn that followed it, byte for byte.
    answer = AIMessage("It opened in 1897.</think>\n<answer>1897</answer>",
                       additional_kwargs={"documents": "It opened on 14 June 1897."})
    assert proto.render([HumanMessage(Q), turn.message, result, answer, HumanMessage("check")]).startswith(first)
    done = proto.parse(gen(answer.content), [HumanMessage(Q), turn.message, result])
    assert done.answer == "1897" and done.boxed and not done.message.tool_calls


def test_zerosearch_puts_the_top_five_snippets_inside_the_assistant_turn():
    proto = make(ZeroSearchProtocol)
    start = proto.render([HumanMessage(Q)])
    assert start == (f"<|im_start|>user\n{say.ZEROSEARCH_INSTRUCTIONS} Question: {Q}\n<|im_end|>\n"
                     "<|im_start|>assistant\n<think>")
    assert "<|im_start|>system" not in start
    turn = proto.parse(gen("I need facts.</think>\n<search> Kestrel Bridge </search>\n", "</search>\n"), [HumanMessage(Q)])
    (call,) = turn.message.tool_calls
    assert call["args"] == {"query": "Kestrel Bridge", "top_k": 5, "read": 0}
    hits = [{"title": f"T{i}", "url": f"https://x/{i}", "snippet": f"S{i}"} for i in range(1, 8)]
    result = tool_result(call["id"], "Kestrel Bridge", "hits as markdown", {"hits": hits, "pages": []})
    prompt = proto.render([HumanMessage(Q), turn.message, result])
    assert prompt == (start + turn.message.content + "<information>\nDoc 1: Title: T1\nSnippet: S1\nDoc 2: Title: T2\n"
                      "Snippet: S2\nDoc 3: Title: T3\nSnippet: S3\nDoc 4: Title: T4\nSnippet: S4\nDoc 5: Title: T5\n"
                      "Snippet: S5\n</information>\n\n<think>")
    empty = tool_result(call["id"], "Kestrel Bridge", "none", {"hits": [], "pages": []})
    assert "<information>\nNo information available\n</information>" in proto.render([HumanMessage(Q), turn.message, empty])
    failed = tool_result(call["id"], "Kestrel Bridge", "[error] search failed: HTTP 503", ok=False)
    assert "<information>\n[error] search failed: HTTP 503\n</information>" in proto.render([HumanMessage(Q), turn.message, failed])


def test_search_o1_answers_in_answer_tags_not_boxed_and_limits_its_searches():
    proto = make(SearchO1Protocol)
    assert "up to 10 times" in proto.render([HumanMessage(Q)])
    turn = proto.parse(gen("So it is 1897.</think>\n<answer>1897", "</answer>"), [HumanMessage(Q)])
    assert turn.answer == "1897" and turn.boxed and turn.message.content.endswith("<answer>1897</answer>")
    # A query asked before is not searched again; the eleventh search is refused: notes, no call.
    asked = [HumanMessage(Q)]
    for n in range(10):
        asked.append(AIMessage(f"q{n}", additional_kwargs={"raw_calls": {f"r{n}-0": f"query {n}"}}))
        asked.append(tool_result(f"r{n}-0", f"query {n}", "x"))
    again = proto.parse(gen("<|begin_search_query|>query 3", "<|end_search_query|>"), asked[:9])
    assert not again.message.tool_calls and again.notes == [say.DUPLICATE_QUERY_NOTE]
    over = proto.parse(gen("<|begin_search_query|>new one", "<|end_search_query|>"), asked)
    assert not over.message.tool_calls and over.notes == [say.search_limit_note(10)]
    ok = proto.parse(gen("<|begin_search_query|>new one", "<|end_search_query|>"), asked[:9])
    assert ok.message.tool_calls[0]["args"]["want"] == 1
    # The results come back in the tags its prompt names, in a user turn.
    prompt = proto.render([*asked[:3]], "It opened in 1897.")
    assert prompt.endswith("q0<|im_end|>\n<|im_start|>user\n<|begin_search_result|>It opened in 1897."
                           "<|end_search_result|><|im_end|>\n<|im_start|>assistant\n<think>")


@pytest.mark.parametrize("cls", [R1SearcherProtocol, ZeroSearchProtocol, SearchO1Protocol])
def test_malformed_output_in_each_format_becomes_a_note(cls):
    proto = make(cls)
    fmt = cls.format
    history = [HumanMessage(Q)]
    cases = {
        f"thinking {fmt.query_open} half a query": say.unclosed_query_note(fmt.query_open, fmt.query_close),
        f"{fmt.query_open}  \"…\" {fmt.query_close}": say.empty_query_note(fmt.query_open, fmt.query_close),
        "I just talk and never search nor answer.": say.no_action_note(fmt.query_open, fmt.query_close),
        "": "Your last turn was empty. Continue: call a tool or give your final answer.",
    }
    for text, note in cases.items():
        turn = proto.parse(gen(text), history)
        assert turn.notes == [note] and turn.answer is None and not turn.message.tool_calls, text
    cut = proto.parse(gen(f"{fmt.query_open} never ends", None, finish="length"), history)
    assert "cut off" in cut.notes[0] and not cut.message.tool_calls
    # A forced turn runs no search, and without an answer tag its tail stands in, flagged.
    forced = proto.parse(gen(f"{fmt.query_open}more{fmt.query_close}", fmt.query_close), history, force_answer=True)
    assert forced.notes == [say.FORCED_SEARCH_NOTE] and not forced.message.tool_calls
    tail = proto.parse(gen("</think>It is probably 1897"), history, force_answer=True)
    assert tail.answer == "It is probably 1897" and not tail.boxed
    # Notes written for \boxed{} answers reach these models with the answer tags instead.
    prompt = proto.render([HumanMessage(Q), AIMessage("hmm"), HumanMessage("Answer now, inside \\boxed{}.")])
    assert "inside <answer> </answer>." in prompt and "boxed" not in prompt


def test_answer_tags_and_the_snippet_window():
    assert find_answer("<answer>a</answer> then <answer> \\boxed{1897} </answer>") == "1897"
    assert find_answer("no tags") is None and find_answer("<answer></answer>") is None
    page = "Intro text. " * 400 + "The Kestrel Bridge opened to traffic on 14 June 1897. " + "Later text. " * 800
    window = snippet_window(page, "Kestrel Bridge opened to traffic 1897", window=100)
    assert "14 June 1897" in window and len(window) < 300
    assert snippet_window(page, "unrelated words entirely", window=100) == page[:200]


def test_legacy_maps_web_search_and_web_visit_to_our_tools_with_a_page_cap():
    proto = LegacyProtocol(None, DEFAULT_SEARCH_PROMPT, context_tokens=32768, reserve_tokens=2048)  # type: ignore[arg-type]
    prompt = proto.render([HumanMessage(Q)])
    assert legacy_schemas() in prompt and "'web_visit'" in prompt and "query_url" not in prompt
    text = ('Look.</think>\n<tool_call>\n{"name": "web_search", "arguments": {"query": "Kestrel"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "web_visit", "arguments": {"url": "https://a.example/x"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "web_visit", "arguments": {"url": "https://b.example/y"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "query_url", "arguments": {"url": "https://c.example"}}\n</tool_call>')
    generation = gen(text, prompt_tokens=10_000)
    turn = proto._map_calls(parse_turn(generation, [HumanMessage(Q)], id_prefix="r0"), generation)
    names = [(c["name"], c["args"]) for c in turn.message.tool_calls]
    cap = page_cap(generation, 2, context_tokens=32768, reserve_tokens=2048)
    assert names == [("search_urls", {"query": "Kestrel", "top_k": 10}),
                     ("read_page", {"url": "https://a.example/x", "max_chars": cap}),
                     ("read_page", {"url": "https://b.example/y", "max_chars": cap})]
    assert 2_000 < cap < (32768 - 10_000) * 3 // 2
    (bad,) = turn.message.invalid_tool_calls
    assert bad["name"] == "query_url" and "web_search, web_visit" in bad["error"]
    # The model reads its own call back, echoed unchanged.
    assert turn.message.additional_kwargs["raw_calls"]["r0-0"].startswith('{"name": "web_search"')
    # A context nearly full still leaves each page a minimum, never a negative cap.
    assert page_cap(gen("x", prompt_tokens=40_000), 3, context_tokens=32768, reserve_tokens=2048) == 2_000
