"""The research loop end to end: fake SGLang, fake search API and fake web, all on 127.0.0.1."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from fathom.app.runs import run_question
from fathom.app.services import build_services
from fathom.graph.build import build_builder
from fathom.graph.context import FathomContext
from tests.conftest import call, fake_settings, research_script
from tests.fakes.sglang import Reply


def queries(searxng) -> list[str]:
    """The distinct searches the backend was asked for (it may page through results)."""
    return [r["params"]["q"] for r in searxng.requests if r["params"].get("pageno", "1") == "1"]


async def run(settings, question="When did the Kestrel Bridge open?", events=None):
    async with build_services(settings) as services:
        return await run_question(
            question, settings, run_id="t1", services=services, on_event=(events.append if events is not None else None)
        )


async def test_question_answered_after_several_rounds_with_parallel_reads(sglang, searxng, web):
    sglang.add(*research_script(web))
    events: list[dict] = []
    summary = await run(fake_settings(sglang, searxng, web), events=events)

    assert summary["status"] == "answered"
    assert summary["answer"] == "1897" and summary["boxed"]
    assert summary["rounds"] == 3
    assert [c["name"] for c in summary["tool_calls"]] == ["search_urls", "query_url", "query_url"]
    assert all(c["ok"] for c in summary["tool_calls"])
    assert {s["url"] for s in summary["sources"]} == {web.url("/article"), web.url("/news/tram")}
    # Each page was fetched exactly once, and the search API asked once.
    assert web.hits["/article"] == 1 and web.hits["/news/tram"] == 1
    assert queries(searxng) == ["Kestrel Bridge opening"]

    # Append-only prompts: each round extends the previous prompt plus the model's own text.
    prompts = sglang.prompts
    assert len(prompts) == 3
    for before, after in zip(prompts, prompts[1:]):
        assert after.startswith(before)
    # The evidence from the page reached the model, in call order.
    last = prompts[-1]
    assert "14 June 1897" in last
    assert last.index(web.url("/article")) < last.index(web.url("/news/tram"))
    # The server's prefix cache is reused, and the usage adds up the server's counts.
    assert summary["usage"]["cached_tokens"] > 0
    assert summary["usage"]["prompt_tokens"] > summary["usage"]["cached_tokens"]
    # Sampling as upstream, with SGLang's own parameter names.
    sampling = sglang.requests[-1]["json"]["sampling_params"]
    assert sampling["temperature"] == 0.6 and sampling["repetition_penalty"] == 1.05
    # Progress reached the caller: rounds, each tool call, URLs read.
    kinds = [e["event"] for e in events]
    assert kinds.count("turn") == 3 and kinds.count("tool_end") == 3
    read_urls = [u for e in events if e["event"] == "tool_end" and e["name"] == "query_url" for u in e["urls"]]
    assert set(read_urls) == {web.url("/article"), web.url("/news/tram")}


async def test_bad_model_output_is_fed_back_never_a_crash(sglang, searxng, web):
    sglang.add(
        "oops</think>\n<tool_call>\n{\"name\": \"search_urls\", \"arguments\": {\"query\": }\n</tool_call>",
        "hmm</think>\n" + call("delete_files", path="/"),
        "x</think>\n" + call("query_url", url=web.url("/article")),
        "maybe " + call("search_urls", query="x") + "</think>\nLet me think more.",
        "</think>\n<tool_call>\n" + '{"name": "search_urls", "arguments": {"query": "kestrel"}}',
        "",
        Reply("cut</think>\n" + call("search_urls", query="k") * 3, finish_reason="length"),
        "ok</think>\n" + call("search_urls", query="Kestrel Bridge"),
        "done</think>\n\\boxed{1897}",
    )
    summary = await run(fake_settings(sglang, searxng, web))
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    prompts = sglang.prompts
    assert "not valid JSON" in prompts[1]
    assert "unknown tool 'delete_files'" in prompts[2]
    assert "needs the argument(s) goal" in prompts[3]
    assert "inside <think>" in prompts[4]
    assert "do not pair up" in prompts[5]
    assert "was empty" in prompts[6]
    assert "cut off" in prompts[7]
    for before, after in zip(prompts, prompts[1:]):
        assert after.startswith(before)
    bad = [c for c in summary["tool_calls"] if not c["ok"]]
    assert len(bad) == 3 and queries(searxng) == ["Kestrel Bridge"]


async def test_round_budget_forces_a_final_answer(sglang, searxng, web):
    sglang.add(*["searching</think>\n" + call("search_urls", query=f"q{i}") for i in range(2)])
    sglang.add("I must answer now.</think>\nBest guess: \\boxed{1897}")
    summary = await run(fake_settings(sglang, searxng, web, max_rounds=3))
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    assert summary["rounds"] == 3
    assert "budget is used up (the limit of 3 turns)" in sglang.prompts[-1]


async def test_forced_turn_that_calls_tools_is_refused_and_asked_again(sglang, searxng, web):
    sglang.add("s</think>\n" + call("search_urls", query="q"))
    sglang.add("still searching</think>\n" + call("search_urls", query="more") + " I think it is 1897")
    sglang.add("fine</think>\nIt opened in \\boxed{1897}.")
    summary = await run(fake_settings(sglang, searxng, web, max_rounds=2))
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    assert "not run: your research budget is used up" in sglang.prompts[-1]
    assert queries(searxng) == ["q"]


async def test_context_budget_forces_an_answer_before_overflow(sglang, searxng, web):
    big_reads = "r</think>\n" + call("query_url", url=web.url("/huge"), goal="filler")
    # The model reads until it is told to answer (a forced turn that calls tools is not an answer).
    sglang.fallback = lambda prompt: "out of room</think>\n\\boxed{unknown}" if "budget is used up" in prompt else big_reads
    settings = fake_settings(
        sglang, searxng, web, context_tokens=6000, answer_reserve_tokens=1000, max_new_tokens_per_turn=400,
        context_strategy="answer",
    )
    summary = await run(settings)
    assert summary["status"] == "answered"
    assert "the context window of 6000 tokens" in sglang.prompts[-1]
    # No request ever asked for more than the context window.
    for request in sglang.requests:
        body = request["json"]
        assert len(body["text"]) // 4 + body["sampling_params"]["max_new_tokens"] <= 6000


async def test_answer_without_research_goes_back_once(sglang, searxng, web):
    sglang.add("I know this.</think>\n\\boxed{1900}")
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web))
    assert summary["answer"] == "1897"
    assert "without a single successful tool call" in sglang.prompts[1]


async def test_unboxed_answer_is_sent_back_then_accepted(sglang, searxng, web):
    sglang.add("s</think>\n" + call("search_urls", query="kestrel"))
    sglang.add("It opened in 1897.</think>\nThe bridge opened in 1897.")
    sglang.add("Still sure.</think>\nIt opened in 1897.")
    summary = await run(fake_settings(sglang, searxng, web))
    assert summary["status"] == "answered" and not summary["boxed"]
    assert summary["answer"].endswith("It opened in 1897.")
    assert "inside \\boxed{}" in sglang.prompts[2]


async def test_tool_calls_per_turn_are_capped(sglang, searxng, web):
    many = "".join(call("search_urls", query=f"q{i}") for i in range(5))
    sglang.add("go</think>\n" + many, "done</think>\n\\boxed{1897}")
    summary = await run(fake_settings(sglang, searxng, web, max_calls_per_turn=2))
    assert sorted(queries(searxng)) == ["q0", "q1"]  # the first two calls, run in parallel
    assert sum(not c["ok"] for c in summary["tool_calls"]) == 3
    assert "at most 2 tool calls are run per turn" in sglang.prompts[1]


async def test_failed_tools_are_reported_to_the_model(sglang, searxng, web):
    sglang.add(
        "r</think>\n" + call("query_url", url=web.url("/missing"), goal="g") + call("query_url", url="ftp://x/y", goal="g"),
        "done</think>\n\\boxed{none}",
        "still nothing</think>\n\\boxed{none}",  # verify sent it back: nothing backed the answer
    )
    searxng.fail_next("server_error", times=10)
    summary = await run(fake_settings(sglang, searxng, web))
    assert [c["ok"] for c in summary["tool_calls"]] == [False, False]
    assert "404" in sglang.prompts[1]
    assert "<tool_response>" in sglang.prompts[1] and "error: \n[error]" in sglang.prompts[1]


async def test_transcript_holds_results_in_call_order_even_when_reads_finish_out_of_order(sglang, searxng, web):
    web.add_page("/late", "<html><title>Late</title><body><p>Late page 1897.</p></body></html>", delay_s=0.5)
    sglang.add(
        "r</think>\n" + call("query_url", url=web.url("/late"), goal="year") + call("query_url", url=web.url("/article"), goal="year"),
        "done</think>\n\\boxed{1897}",
    )
    await run(fake_settings(sglang, searxng, web))
    prompt = sglang.prompts[1]
    assert prompt.index(web.url("/late")) < prompt.index(web.url("/article"))


async def test_chat_protocol_runs_the_same_loop_over_tool_calling(sglang, searxng, web):
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, search_protocol="chat"))
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    assert [c["name"] for c in summary["tool_calls"]] == ["search_urls", "query_url", "query_url"]
    chat_requests = [r for r in sglang.requests if r["path"] == "/v1/chat/completions"]
    assert len(chat_requests) == 3
    last = chat_requests[-1]["json"]["messages"]
    assert [m["role"] for m in last].count("tool") == 3


async def test_wall_clock_budget_forces_a_final_answer(sglang, searxng, web):
    sglang.add(Reply("slow thinking</think>\n" + call("search_urls", query="kestrel"), delay_s=0.6))
    sglang.add("time is up</think>\n\\boxed{1897}")
    summary = await run(fake_settings(sglang, searxng, web, max_wall_seconds=0.3))
    assert summary["answer"] == "1897" and summary["rounds"] == 2
    assert "budget is used up (the time limit" in sglang.prompts[-1]


async def test_shared_services_are_rebuilt_for_a_different_api_key(sglang, searxng, web):
    """Services built from settings are cached per event loop; a changed API key (which
    ``model_dump_json`` masks) must get clients of its own, carrying the new key."""
    from fathom.app.services import services_for
    from fathom.graph.context import FathomContext

    base = fake_settings(sglang, searxng, web).model_dump()
    first = await services_for(FathomContext(settings={**base, "model_api_key": "old-key"}))
    again = await services_for(FathomContext(settings={**base, "model_api_key": "old-key"}))
    other = await services_for(FathomContext(settings={**base, "model_api_key": "new-key"}))
    assert again is first and other is not first
    assert other.synth._http.headers["Authorization"] == "Bearer new-key"
    for services in (first, other):
        await services.aclose()


@pytest.mark.parametrize(("pause_s", "forced"), [(2 * 86400.0, False), (100.0, True)])
async def test_the_wall_clock_budget_lives_with_the_run(sglang, searxng, web, pause_s, forced):
    """A thread continued a day later in the same process still has its budget: a gap longer
    than any step (a crash, a plan review, a resume) is a pause, not research time. A gap that
    a step could have taken counts, and here spends the 60 s budget."""
    sglang.add(*research_script(web))
    settings = fake_settings(sglang, searxng, web, max_wall_seconds=60)
    now = [1_000_000.0]
    graph = build_builder().compile(checkpointer=InMemorySaver(), interrupt_after=["search"])
    config = {"configurable": {"thread_id": "paused"}}
    async with build_services(settings) as services:
        services.clock = lambda: now[0]
        context = FathomContext(services=services)
        await graph.ainvoke({"question": "When did the Kestrel Bridge open?"}, config, context=context)
        now[0] += pause_s
        while (await graph.aget_state(config)).next:
            await graph.ainvoke(None, config, context=context)
    state = (await graph.aget_state(config)).values
    assert ("budget is used up (the time limit" in sglang.prompts[1]) is forced
    if not forced:
        assert state["answer"] == "1897" and state["rounds"] == 3
        assert not any("budget is used up" in prompt for prompt in sglang.prompts)
