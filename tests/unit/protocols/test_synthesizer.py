"""The synthesizer protocol: trace formatting, tool-call list, trace budgeting, prompt, reply split."""

from __future__ import annotations

import copy
import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from fathom.protocols.prompts import SYNTH_SYSTEM_PROMPT, SYNTH_USER_LEAD_IN
from fathom.protocols.synthesizer import (
    fit_trace,
    format_trace,
    load_synth_prompt,
    render_synth_prompt,
    split_plan_report,
    strip_leaked_think,
    synth_system_prompt,
    tool_call_list,
    trace_budget,
)

QUESTION = "Which is larger: a < b and c > d, or Vec<T>?"


def call_text(name: str, **args: object) -> str:
    return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)


def tool_result(name: str, content: str, *, index: int, args: dict, ok: bool = True, sources=(), call_id=None) -> ToolMessage:
    return ToolMessage(
        content=content,
        tool_call_id=call_id or f"c-{name}-{index}-{len(content)}",
        name=name,
        status="success" if ok else "error",
        artifact={
            "index": index,
            "raw": call_text(name, **args),
            "args": args,
            "ok": ok,
            "sources": [{"url": u, "title": u} for u in sources],
        },
    )


def hits(*urls: str) -> str:
    return "\n---\n\n".join(
        f"### {i}. Title {i}\n**URL**: {u}\n\n**Snippet**: snippet about {u}\n" for i, u in enumerate(urls, 1)
    )


def search_result(query: str, *urls: str, index: int = 0) -> ToolMessage:
    return tool_result("search_urls", hits(*urls), index=index, args={"query": query}, sources=urls)


def read_result(url: str, text: str, *, index: int = 0, ok: bool = True) -> ToolMessage:
    return tool_result("query_url", text, index=index, args={"url": url, "goal": "find facts"}, ok=ok, sources=[url] if ok else [])


def turn(thinking: str, *calls: str) -> AIMessage:
    body = "".join(f"\n<tool_call>\n{c}\n</tool_call>" for c in calls)
    return AIMessage(f"{thinking}</think>\n{body}")


@pytest.fixture
def transcript() -> list:
    return [
        HumanMessage(QUESTION),
        turn("Let me search. Note that x < y holds", call_text("search_urls", query="vec"), call_text("query_url", url="https://b.org/p", goal="g")),
        # the second call finished first: results arrive out of call order
        read_result("https://b.org/p", "The page says <div>quoted html</div> and Vec<T> is generic.", index=1),
        search_result("vec", "https://a.com/x", "https://c.net/y", index=0),
        turn("Reading failed one", call_text("query_url", url="https://dead.example/z", goal="g")),
        read_result("https://dead.example/z", "[error] could not fetch https://dead.example/z: 404", ok=False),
        AIMessage("Done.</think >\n\nThe answer is \\boxed{Vec<T>}"),
        HumanMessage("Your answer has no source; check it."),
    ]


# ---- format_trace ---------------------------------------------------------------------------------


def test_angle_brackets_in_text_survive(transcript):
    trace = format_trace(transcript)
    for kept in ("a < b and c > d", "Vec<T>", "<div>quoted html</div>", "x < y holds", "\\boxed{Vec<T>}"):
        assert kept in trace


def test_known_tags_are_removed_and_their_content_kept(transcript):
    transcript.append(AIMessage("<think>plan</THINK>\n<tool_response>x</tool_response><|im_end|>"))
    trace = format_trace(transcript)
    for tag in ("<think>", "</think", "</THINK>", "<tool_call>", "</tool_call>", "<tool_response>", "<|im_end|>"):
        assert tag not in trace
    assert '{"name": "search_urls", "arguments": {"query": "vec"}}' in trace
    assert "plan" in trace and "Reading failed one" in trace


def test_layout_question_results_in_call_order_and_notes(transcript):
    trace = format_trace(transcript)
    assert trace.startswith(f"QUESTION:\n{QUESTION}\n\nASSISTANT:\nLet me search.")
    first = trace.index('SEARCH RESULT 1: search_urls(query="vec")\n### 1. Title 1')
    second = trace.index('SEARCH RESULT 2: query_url(url="https://b.org/p", goal="find facts")\nThe page says')
    assert first < second
    assert 'SEARCH RESULT 3: query_url(url="https://dead.example/z", goal="find facts") (failed)\n[error]' in trace
    assert trace.endswith("USER:\nYour answer has no source; check it.")


def test_system_messages_left_out_and_blank_runs_collapsed():
    trace = format_trace([SystemMessage("secret rules"), HumanMessage("Q?\n\n\n\n\nmore"), AIMessage("a\n \n\t\n\nb")])
    assert "secret rules" not in trace
    assert "\n\n\n" not in trace
    assert "Q?\n\nmore" in trace and "a\n\nb" in trace


def test_tool_results_without_artifact_take_arguments_from_the_call():
    call = AIMessage("", tool_calls=[{"name": "query_url", "args": {"url": "https://x.org/", "goal": "g"}, "id": "call-1"}])
    result = ToolMessage("page text", tool_call_id="call-1", name="query_url")
    assert 'SEARCH RESULT 1: query_url(url="https://x.org/", goal="g")\npage text' in format_trace([HumanMessage("Q"), call, result])
    assert tool_call_list([HumanMessage("Q"), call, result])[0]["arguments"] == {"url": "https://x.org/", "goal": "g"}


def test_chat_protocol_calls_are_shown():
    message = AIMessage("", tool_calls=[{"name": "search_urls", "args": {"query": "café"}, "id": "1"}])
    trace = format_trace([HumanMessage("Q"), message])
    assert 'Tool call: search_urls(query="café")' in trace


# ---- tool_call_list ----------------------------------------------------------------


def test_tool_call_list(transcript):
    calls = tool_call_list(transcript)
    assert [c["n"] for c in calls] == [1, 2, 3]
    assert calls[0] == {
        "n": 1, "name": "search_urls", "arguments": {"query": "vec"}, "ok": True,
        "urls": ["https://a.com/x", "https://c.net/y"],
    }
    assert calls[1]["urls"] == ["https://b.org/p"] and calls[1]["ok"] is True
    assert calls[2]["ok"] is False and calls[2]["urls"] == []
    assert calls[2]["arguments"]["url"] == "https://dead.example/z"


def test_tool_call_list_refused_call_decodes_raw():
    refused = ToolMessage("[error] bad args", tool_call_id="x", name="query_url", status="error",
                          artifact={"index": 0, "raw": call_text("query_url", url="ftp://x"), "ok": False})
    garbage = ToolMessage("[error] not JSON", tool_call_id="y", name="invalid_call", status="error",
                          artifact={"index": 1, "raw": "{nope", "ok": False})
    calls = tool_call_list([HumanMessage("Q"), AIMessage("t"), refused, garbage])
    assert calls[0]["arguments"] == {"url": "ftp://x"}
    assert calls[1]["arguments"] == {"raw": "{nope"}


def test_urls_come_from_what_read_stored_never_from_text():
    """A search result's URLs are the hits read stored; a URL only in the text is not retrieved."""
    message = ToolMessage(hits("https://only-in-text.org/"), tool_call_id="s", name="search_urls",
                          artifact={"index": 0, "args": {"query": "q"}, "ok": True, "sources": []})
    assert tool_call_list([HumanMessage("Q"), AIMessage("t"), message])[0]["urls"] == []


# ---- fit_trace -------------------------------------------------------------------------------------------


def long_run(rounds: int = 4, size: int = 6000) -> list:
    messages: list = [HumanMessage(QUESTION)]
    for r in range(rounds):
        messages.append(turn(f"round {r}", call_text("query_url", url=f"https://p{r}.org/", goal="g")))
        messages.append(read_result(f"https://p{r}.org/", f"R{r} " + ("word " * (size // 5))))
    messages.append(AIMessage("final</think>\\boxed{1}"))
    return messages


def est(text: str) -> int:
    return len(text) // 3 + 1


def test_fit_trace_noop_when_it_fits():
    messages = long_run()
    assert [m.content for m in fit_trace(messages, max_tokens=10**6)] == [m.content for m in messages]


def test_fit_trace_shortens_oldest_first_and_keeps_question_and_latest():
    messages = long_run()
    snapshot = copy.deepcopy(messages)
    full = est(format_trace(messages))
    budget = full - 1500  # needs about one result shortened
    fitted = fit_trace(messages, max_tokens=budget)
    assert est(format_trace(fitted)) <= budget
    assert messages == snapshot  # inputs untouched
    assert fitted is not messages
    tools = [i for i, m in enumerate(fitted) if isinstance(m, ToolMessage)]
    assert "[shortened:" in fitted[tools[0]].content
    assert fitted[tools[0]].content.startswith("R0 word")
    omitted = len(messages[tools[0]].content) - len(fitted[tools[0]].content.split("\n[shortened")[0])
    assert f"[shortened: {omitted} chars omitted to fit the synthesizer context]" in fitted[tools[0]].content
    assert [fitted[i].content for i in tools[1:]] == [messages[i].content for i in tools[1:]]
    assert fitted[0].content == QUESTION
    assert fitted[tools[0]].artifact == messages[tools[0]].artifact


def test_fit_trace_elides_when_shortening_is_not_enough():
    messages = long_run(rounds=5)
    tools = [i for i, m in enumerate(messages) if isinstance(m, ToolMessage)]
    # shortening all four older results saves ~4 x 1600 tokens, removing one whole ~2000: this
    # budget needs every older result shortened and the oldest ones removed
    budget = est(format_trace(messages)) - 7000
    fitted = fit_trace(messages, max_tokens=budget)
    assert est(format_trace(fitted)) <= budget
    assert fitted[tools[0]].content.startswith("[shortened:")  # removed whole
    assert fitted[tools[3]].content.startswith("R3 word")  # newer: excerpt kept
    assert fitted[tools[-1]].content == messages[tools[-1]].content  # latest round intact
    assert all("[shortened:" in fitted[i].content for i in tools[:-1])


def test_fit_trace_best_effort_never_cuts_question_or_latest_round():
    messages = long_run()
    fitted = fit_trace(messages, max_tokens=10)
    tools = [i for i, m in enumerate(fitted) if isinstance(m, ToolMessage)]
    assert fitted[0].content == QUESTION
    assert fitted[tools[-1]].content == messages[tools[-1]].content
    assert all(fitted[i].content.startswith("[shortened:") for i in tools[:-1])


def test_fit_trace_search_excerpt_keeps_hit_urls():
    messages = [HumanMessage("Q"), turn("t", call_text("search_urls", query="q"))]
    many = [f"https://site{i}.org/page" for i in range(10)]
    messages.append(tool_result("search_urls", hits(*many).replace("snippet about", "snippet " + "x" * 400 + " about"),
                                index=0, args={"query": "q"}, sources=many))
    messages += [turn("t2", call_text("search_urls", query="r")), search_result("r", "https://z.org/")]
    budget = est(format_trace(messages)) - 500
    fitted = fit_trace(messages, max_tokens=budget, head_chars=2000)
    assert "[shortened:" in fitted[2].content
    assert all(url in fitted[2].content for url in many)


# ---- prompts -----------------------------------------------------------------------------------------------


def test_system_prompt_required_content_and_language():
    text = synth_system_prompt()
    assert "{language}" in SYNTH_SYSTEM_PROMPT and "{language}" not in text
    assert "Write the report in English" in text
    assert "Write the report in Français" in synth_system_prompt(language="Français")
    for must in ("QUESTION", "TRACE", "TOOL_CALLS", "[https://", "<think>[the plan]</think>[the report]",
                 "# Executive Summary", "## Main Body", "## Recommendations", "## Conclusion", "## Sources used",
                 "| Section | Item | Content | Confidence |", "High, Med or Low", "2,000 words", "SQ1"):
        assert must in text, must


def test_user_prompt_file_kept_byte_for_byte(tmp_path):
    path = tmp_path / "synth.txt"
    path.write_bytes(b"\nUpstream text {braces}\r\n    ")
    prompt = load_synth_prompt(path)
    assert synth_system_prompt(prompt) == "\nUpstream text {braces}\r\n    "
    assert synth_system_prompt(prompt, language="German").endswith("\n\nWrite the report in German.")
    assert load_synth_prompt(None).source == "builtin"


def test_render_synth_prompt_exact_bytes():
    calls = [{"n": 1, "name": "search_urls", "arguments": {"query": "Zürich"}, "ok": True, "urls": []}]
    prompt = render_synth_prompt("SYS", "Q?", "TRACE", calls)
    expected = (
        "<|im_start|>system\nSYS\n<|im_end|>\n"
        f"<|im_start|>user\n{SYNTH_USER_LEAD_IN}\n\nQuestion:\nQ?\n\nTrace (model transcript):\nTRACE\n\n"
        'Tool Calls (as-recorded):\n[\n{"n": 1, "name": "search_urls", "arguments": {"query": "Zürich"}, '
        '"ok": true, "urls": []}\n]\n\n— End of trace —\n<|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    assert prompt == expected
    assert not prompt.endswith("<think>")
    json.loads(prompt.split("Tool Calls (as-recorded):\n")[1].split("\n\n—")[0])  # valid JSON
    assert "Tool Calls (as-recorded):\n[]" in render_synth_prompt("S", "Q", "T", [], lead_in="L")


def test_trace_budget_leaves_room_for_frame_and_reply():
    calls = [{"n": 1, "name": "search_urls", "arguments": {"query": "q"}, "ok": True, "urls": []}]
    budget = trace_budget(context_tokens=81920, max_new_tokens=10000, system="S" * 3000, question="Q?",
                          tool_calls=calls, margin=0)
    frame = render_synth_prompt("S" * 3000, "Q?", "", calls)
    assert budget == 81920 - 10000 - (len(frame) // 3 + 1)


# ---- the reply ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plan", "report"),
    [
        ("just a report", "", "just a report"),
        ("<think>\nthe plan\n</think>\n\n# Report", "the plan", "# Report"),
        ("the plan</think >\n# Report", "the plan", "# Report"),
        ("<THINK>p1</Think>middle<think>p2</think>\n# Final", "p1", "# Final"),
        ("plan</think>", "plan", ""),
    ],
)
def test_split_plan_report(text, plan, report):
    assert split_plan_report(text) == (plan, report)


def test_strip_leaked_think():
    report = "# R\n<think>oops</think>\nBody a < b.\n\n\n</think>\n<think >\nTail<|im_end|>"
    assert strip_leaked_think(report) == "# R\n\nBody a < b.\n\nTail"
