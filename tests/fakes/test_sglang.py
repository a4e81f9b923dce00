"""The fake SGLang server itself: protocol shapes other tests rely on (plain httpx and openai SDK)."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import openai
import pytest

from tests.fakes.sglang import (
    EOS_TOKEN_ID,
    FakeSGLang,
    Faults,
    Reply,
    count_tokens,
    render_chatml,
)


@pytest.fixture
async def http(sglang):
    async with httpx.AsyncClient(base_url=sglang.url, timeout=10) as client:
        yield client


def gen_body(text, **sampling):
    return {"text": text, "sampling_params": {"max_new_tokens": 64, **sampling}}


def sse_events(raw: str) -> list:
    lines = [line.removeprefix("data: ") for line in raw.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def test_token_rule():
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


async def test_generate_shape(sglang, http):
    sglang.add("hello")
    resp = await http.post("/generate", json=gen_body("prompt text"))
    out = resp.json()
    assert resp.status_code == 200 and out["text"] == "hello"
    meta = out["meta_info"]
    assert meta["finish_reason"] == {"type": "stop", "matched": EOS_TOKEN_ID}
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["cached_tokens"]) == (3, 2, 0)
    assert sglang.prompts == ["prompt text"]


async def test_unknown_sampling_key_is_400_like_sglang(sglang, http):
    sglang.add("never")
    resp = await http.post("/generate", json={"text": "p", "sampling_params": {"max_tokens": 8}})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("unknown field `max_tokens`, expected one of `max_new_tokens`")
    bad = await http.post("/generate", json={"text": "p", "sampling_params": {"repetition_penalty": 3}})
    assert bad.status_code == 400 and "repetition_penalty" in bad.json()["error"]["message"]
    missing = await http.post("/generate", json={"sampling_params": {}})
    assert missing.json()["error"]["message"] == "Either text, input_ids or input_embeds should be provided."
    assert sglang.remaining == 1


async def test_context_messages_are_sglangs(http):
    async with httpx.AsyncClient(timeout=10) as client:
        with FakeSGLang(["x"], context_length=100) as small:
            total = await client.post(small.url + "/generate", json=gen_body("a" * 200, max_new_tokens=60))
            alone = await client.post(small.url + "/generate", json=gen_body("a" * 400, max_new_tokens=0))
    assert total.status_code == alone.status_code == 400
    assert total.json()["error"]["message"] == (
        "Requested token count exceeds the model's maximum context length of 100 tokens. You requested a "
        "total of 110 tokens: 50 tokens from the input messages and 60 tokens for the completion. Please "
        "reduce the number of tokens in the input messages or the completion to fit within the limit.")
    assert alone.json()["error"]["message"] == "The input (100 tokens) is longer than the model's context length (100 tokens)."


async def test_stop_trim_and_no_stop_trim(sglang, http):
    sglang.add("answer: 42\nmore", "answer: 42\nmore")
    trimmed = (await http.post("/generate", json=gen_body("p", stop=["\n", "42"]))).json()
    kept = (await http.post("/generate", json=gen_body("q", stop="\n", no_stop_trim=True))).json()
    assert (trimmed["text"], trimmed["meta_info"]["finish_reason"]) == ("answer: ", {"type": "stop", "matched": "42"})
    assert kept["text"] == "answer: 42\n"


async def test_cached_tokens_track_seen_prompts_and_flush(sglang, http):
    sglang.add("abcd" * 4, "x", "y")
    await http.post("/generate", json=gen_body("P" * 40))
    hit = (await http.post("/generate", json=gen_body("P" * 40 + "abcd" * 4 + "tail")))
    assert hit.json()["meta_info"]["cached_tokens"] == 14  # (40 + 16) chars // 4
    await http.post("/flush_cache")
    miss = await http.post("/generate", json=gen_body("P" * 40))
    assert miss.json()["meta_info"]["cached_tokens"] == 0


async def test_batch_text_gives_a_list(sglang, http):
    sglang.add("one", "two")
    out = (await http.post("/generate", json={"text": ["a", "b"], "sampling_params": {"max_new_tokens": 8}})).json()
    assert [o["text"] for o in out] == ["one", "two"]


async def test_generate_stream_is_cumulative_sse(sglang, http):
    sglang.add("a fairly long completion that spans several chunks")
    resp = await http.post("/generate", json={**gen_body("p"), "stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert len(events) > 1
    assert all(e["meta_info"]["finish_reason"] is None for e in events[:-1])
    assert events[-1]["text"] == "a fairly long completion that spans several chunks"
    assert all(events[-1]["text"].startswith(e["text"]) for e in events)
    assert events[-1]["meta_info"]["finish_reason"]["type"] == "stop"


async def test_stream_errors_arrive_inside_the_stream(http):
    async with httpx.AsyncClient(timeout=10) as client:
        with FakeSGLang(["x"], context_length=10) as small:
            resp = await client.post(small.url + "/generate", json={**gen_body("p" * 100), "stream": True})
    assert resp.status_code == 200
    (event,) = sse_events(resp.text)
    assert event["error"]["code"] == 400 and "longer than the model's context length" in event["error"]["message"]


async def test_when_routes_by_prompt_and_callables_see_the_prompt(sglang, http):
    sglang.add("plain", Reply("about cats", when=r"cats?\b"), lambda prompt: f"echo {len(prompt)}")
    texts = [(await http.post("/generate", json=gen_body(p))).json()["text"] for p in ("a cat", "dogs", "xyz")]
    # a matching conditional item wins over an earlier plain one; others take plain items in order
    assert texts == ["about cats", "plain", "echo 3"]
    assert sglang.remaining == 0


async def test_exhausted_script_is_a_500_with_a_clear_message(sglang, http):
    resp = await http.post("/generate", json=gen_body("anything"))
    assert resp.status_code == 500 and "fake script exhausted" in resp.json()["error"]["message"]


async def test_fallback_answers_when_the_script_is_empty(http):
    async with httpx.AsyncClient(timeout=10) as client:
        with FakeSGLang(["first"], fallback=lambda p: "default") as f:
            texts = [(await client.post(f.url + "/generate", json=gen_body("p"))).json()["text"] for _ in range(3)]
    assert texts == ["first", "default", "default"]


async def test_failures_down_and_recording(sglang, http):
    sglang.add("ok")
    sglang.fail_next(1, status=502)
    assert (await http.get("/health")).status_code == 200  # health does not consume failures
    assert (await http.post("/generate", json=gen_body("p"))).status_code == 502
    sglang.down()
    assert (await http.get("/health")).status_code == 503
    sglang.up()
    assert (await http.post("/generate", json=gen_body("p"), headers={"Authorization": "Bearer k"})).json()["text"] == "ok"
    last = sglang.requests[-1]
    assert last["path"] == "/generate" and last["json"] == gen_body("p")
    assert "authorization" not in last["headers"]


async def test_scripted_status_and_abort(sglang, http):
    sglang.add(Reply(status=503, error="overloaded"), Reply(finish_reason="abort", error="cancelled"))
    first = await http.post("/generate", json=gen_body("p"))
    assert (first.status_code, first.json()) == (503, {"error": {"message": "overloaded"}})
    second = (await http.post("/generate", json=gen_body("p"))).json()
    assert second["meta_info"]["finish_reason"]["type"] == "abort"
    assert second["meta_info"]["finish_reason"]["message"] == "cancelled"


async def test_info_routes(sglang, http):
    for path in ("/health", "/health_generate", "/ready"):
        resp = await http.get(path)
        assert resp.status_code == 200 and resp.content == b""
    for path in ("/model_info", "/get_model_info"):
        assert (await http.get(path)).json()["model_path"] == "FractalAIResearch/Fathom-Search-4B"
    for path in ("/server_info", "/get_server_info"):
        assert (await http.get(path)).json()["context_length"] == 40960
    models = (await http.get("/v1/models")).json()
    assert models["data"][0]["id"] == "FractalAIResearch/Fathom-Search-4B"
    assert models["data"][0]["max_model_len"] == 40960


async def test_restart_on_the_same_port():
    sglang = FakeSGLang(["before", "after"]).start()
    url = sglang.url
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(url + "/generate", json=gen_body("p"))).json()["text"] == "before"
        sglang.stop()
        with pytest.raises(httpx.ConnectError):
            await client.post(url + "/generate", json=gen_body("p"))
        sglang.start()
        try:
            assert (await client.post(sglang.url + "/generate", json=gen_body("p"))).json()["text"] == "after"
        finally:
            sglang.stop()
    assert sglang.url == url


# ---- OpenAI routes ---------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
CALL_TEXT = '<think>need data</think>\n<tool_call>\n{"name": "lookup", "arguments": {"q": "x"}}\n</tool_call>'


@pytest.fixture
async def sdk(sglang):
    client = openai.AsyncOpenAI(base_url=sglang.url + "/v1", api_key="EMPTY", max_retries=0)
    yield client
    await client.close()


async def test_chat_completion_via_openai_sdk(sglang, sdk):
    sglang.add(Reply("<think>hmm</think>\n\nParis", when=r"capital"), CALL_TEXT, CALL_TEXT)
    messages = [{"role": "user", "content": "capital of France?"}]
    resp = await sdk.chat.completions.create(model="m", messages=messages)
    msg = resp.choices[0].message
    assert (msg.content, msg.model_extra["reasoning_content"]) == ("Paris", "hmm")
    assert resp.choices[0].model_extra["matched_stop"] == EOS_TOKEN_ID
    assert resp.usage.prompt_tokens == count_tokens(render_chatml(messages))
    tool = await sdk.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert tool.choices[0].finish_reason == "tool_calls"
    assert tool.choices[0].message.tool_calls[0].function.arguments == '{"q": "x"}'
    plain = await sdk.chat.completions.create(model="m", messages=messages)  # no tools: text stays
    assert plain.choices[0].message.tool_calls is None
    assert "<tool_call>" in plain.choices[0].message.content


async def test_chat_stream_with_usage(sglang, sdk):
    sglang.add("<think>thinking it over</think>The answer is forty-two, as computed.", CALL_TEXT)
    stream = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "q"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    assert (content, reasoning) == ("The answer is forty-two, as computed.", "thinking it over")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    stream = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}],
                                               tools=TOOLS, stream=True)
    calls = [tc for c in [c async for c in stream] if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.function.name, tc.function.arguments) for tc in calls] == [("lookup", '{"q": "x"}')]


async def test_chat_errors_are_openai_shaped(sdk):
    with FakeSGLang(["x"], context_length=20) as small:
        client = openai.AsyncOpenAI(base_url=small.url + "/v1", api_key="EMPTY", max_retries=0)
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "y" * 200}])
        await client.close()
    assert err.value.body["object"] == "error"
    assert "longer than the model's context length (20 tokens)" in err.value.body["message"]


async def test_text_completions(sglang, sdk):
    sglang.add("completed text that is long")
    resp = await sdk.completions.create(model="m", prompt="Once", max_tokens=3)
    assert (resp.choices[0].text, resp.choices[0].finish_reason) == ("completed te", "length")
    assert resp.usage.prompt_tokens == 1


def test_seeded_faults_are_the_same_for_the_same_request_and_come_in_their_shares():
    faults = Faults(seed=7, error=0.10, hang=0.05, drop=0.05)
    bodies = [f'{{"text": "prompt {i}"}}'.encode() for i in range(4000)]
    first = [faults.pick(b, 0) for b in bodies]
    assert first == [faults.pick(b, 0) for b in bodies]  # whatever order requests come in
    assert [faults.pick(b, 1) for b in bodies] != first  # a retry draws again
    counts = Counter(first)
    assert 340 < counts[503] < 460 and 150 < counts["hang"] < 250 and 150 < counts["drop"] < 250
    assert Faults(seed=8, error=0.10).pick(bodies[0], 0) in (None, 503)
