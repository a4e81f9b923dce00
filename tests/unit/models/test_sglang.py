"""SGLangClient against the fake SGLang server over loopback (and httpx.MockTransport for shapes)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from fathom.models.base import ContextLengthError, ModelError, ModelUnavailableError
from fathom.models.sglang import SGLangClient
from tests.fakes.server import free_port
from tests.fakes.sglang import EOS_TOKEN_ID, FakeSGLang, Reply, count_tokens

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n<think>"


@pytest.fixture
async def client(sglang):
    async with SGLangClient(sglang.url, backoff_s=0.001, name="search model") as c:
        yield c


def generate_requests(sglang: FakeSGLang) -> list[dict]:
    return [r for r in sglang.requests if r["path"] == "/generate"]


async def test_generate_returns_text_and_token_counts(sglang, client):
    sglang.add("Paris.</think>\n\\boxed{Paris}")
    gen = await client.generate(PROMPT, max_new_tokens=512)
    assert gen.text == "Paris.</think>\n\\boxed{Paris}"
    assert gen.finish_reason == "stop"
    assert gen.matched_stop == EOS_TOKEN_ID
    assert gen.prompt_tokens == count_tokens(PROMPT)
    assert gen.completion_tokens == count_tokens(gen.text)
    assert gen.cached_tokens == 0


async def test_generate_sends_only_sglang_sampling_names(sglang, client):
    sglang.add("ok", "ok")
    await client.generate(PROMPT, max_new_tokens=100)
    await client.generate(PROMPT, max_new_tokens=7, temperature=0.4, repetition_penalty=1.0, top_p=0.9, stop=["\n"])
    first, second = (r["json"] for r in generate_requests(sglang))
    assert first == {
        "text": PROMPT,
        "sampling_params": {"max_new_tokens": 100, "temperature": 0.6, "repetition_penalty": 1.05},
    }
    assert second["sampling_params"] == {
        "max_new_tokens": 7, "temperature": 0.4, "repetition_penalty": 1.0, "stop": ["\n"], "top_p": 0.9,
    }
    assert sglang.prompts == [PROMPT, PROMPT]


async def test_stop_string_is_trimmed_and_reported(sglang, client):
    sglang.add("first line\nsecond line")
    gen = await client.generate(PROMPT, max_new_tokens=100, stop=["\n"])
    assert (gen.text, gen.finish_reason, gen.matched_stop) == ("first line", "stop", "\n")


async def test_cached_tokens_grow_when_a_prompt_extends_the_last_round(sglang, client):
    sglang.add("<tool_call>\n{\"name\": \"search_urls\"}\n</tool_call>", "done")
    first = await client.generate(PROMPT, max_new_tokens=200)
    round2 = PROMPT + first.text + "<|im_end|>\n<|im_start|>user\n<tool_response>…</tool_response><|im_end|>"
    second = await client.generate(round2, max_new_tokens=200)
    assert first.cached_tokens == 0
    # the radix cache holds round 1's prompt and completion: all of it is a prefix of round 2
    assert second.cached_tokens == len(PROMPT + first.text) // 4
    assert 0 < second.cached_tokens < second.prompt_tokens


async def test_max_new_tokens_cuts_the_text_with_finish_length(sglang, client):
    sglang.add("x" * 400)
    gen = await client.generate(PROMPT, max_new_tokens=10)
    assert gen.finish_reason == "length"
    assert gen.completion_tokens == 10
    assert gen.text == "x" * 40
    assert gen.matched_stop is None


async def test_scripted_length_finish(sglang, client):
    sglang.add(Reply("partial answer", finish_reason="length"))
    gen = await client.generate(PROMPT, max_new_tokens=50)
    assert (gen.text, gen.finish_reason) == ("partial answer", "length")


async def test_503_twice_then_success_is_retried(sglang, client):
    sglang.fail_next(2, status=503)
    sglang.add("ok")
    gen = await client.generate(PROMPT, max_new_tokens=10)
    assert gen.text == "ok"
    assert len(generate_requests(sglang)) == 3


async def test_503_forever_gives_up_after_max_retries(sglang):
    sglang.fail_next(10, status=503)
    async with SGLangClient(sglang.url, max_retries=2, backoff_s=0.001, name="search model") as c:
        with pytest.raises(ModelUnavailableError) as err:
            await c.generate(PROMPT, max_new_tokens=10)
    message = str(err.value)
    assert message.startswith(f"search model server at {sglang.url} is unreachable after 3 attempts")
    assert "HTTP 503" in message and "\n" not in message
    assert len(generate_requests(sglang)) == 3


async def test_exhausted_script_fails_loudly(sglang):
    async with SGLangClient(sglang.url, max_retries=0) as c:
        with pytest.raises(ModelUnavailableError, match="fake script exhausted"):
            await c.generate(PROMPT, max_new_tokens=10)


async def test_context_overflow_is_a_readable_context_length_error():
    with FakeSGLang(["never"], context_length=1000) as small:
        async with SGLangClient(small.url, backoff_s=0.001) as c:
            with pytest.raises(ContextLengthError) as err:
                await c.generate(PROMPT, max_new_tokens=990)
            n = count_tokens(PROMPT)
            message = str(err.value)
            assert "\n" not in message and small.url in message
            assert "exceeds the model's maximum context length of 1000 tokens" in message
            assert f"You requested a total of {n + 990} tokens: {n} tokens from the input messages" in message
            with pytest.raises(ContextLengthError, match=r"The input \(\d+ tokens\) is longer than"):
                await c.generate("y" * 4000, max_new_tokens=1)
        assert len([r for r in small.requests if r["path"] == "/generate"]) == 2  # 400s are not retried
        assert small.remaining == 1  # and nothing was generated


async def test_other_4xx_is_a_model_error_with_the_servers_message_and_no_retry(sglang, client):
    sglang.add(Reply(status=400, error="unknown field `max_tokens`, expected one of `max_new_tokens`"))
    with pytest.raises(ModelError) as err:
        await client.generate(PROMPT, max_new_tokens=10)
    assert not isinstance(err.value, (ModelUnavailableError, ContextLengthError))
    assert "HTTP 400" in str(err.value) and "unknown field `max_tokens`" in str(err.value)
    assert len(generate_requests(sglang)) == 1


async def test_abort_finish_is_a_model_error(sglang, client):
    sglang.add(Reply(finish_reason="abort", error="Abort requested by the scheduler"))
    with pytest.raises(ModelError, match="aborted the generation: Abort requested by the scheduler"):
        await client.generate(PROMPT, max_new_tokens=10)


async def test_server_down_is_unavailable_with_the_url():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with SGLangClient(url, max_retries=1, backoff_s=0.001, name="search model") as c:
        with pytest.raises(ModelUnavailableError) as err:
            await c.generate(PROMPT, max_new_tokens=10)
        assert await c.health() is False
    assert str(err.value) == (
        f"search model server at {url} is unreachable after 2 attempts: connection refused; start it with "
        "'fathom serve start search', point --search-model-url at a running server, or run without a server with --local"
    )


async def test_read_timeout_is_unavailable(sglang):
    sglang.add(Reply("late", delay_s=30))
    async with SGLangClient(sglang.url, timeout_s=0.2, max_retries=0) as c:
        with pytest.raises(ModelUnavailableError, match=r"no answer within 0.2 s"):
            await c.generate(PROMPT, max_new_tokens=10)


async def test_a_timed_out_attempt_is_retried(sglang):
    sglang.add(Reply("late", delay_s=30), "on time")
    async with SGLangClient(sglang.url, timeout_s=0.3, max_retries=1, backoff_s=0.001) as c:
        gen = await c.generate(PROMPT, max_new_tokens=10)
    assert gen.text == "on time"


async def test_api_key_is_sent_as_bearer_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeSGLang(["ok"], api_key="s3cret-key") as sglang:
        async with SGLangClient(sglang.url, api_key="s3cret-key") as c:
            assert (await c.generate(PROMPT, max_new_tokens=10)).text == "ok"
        sglang.fail_next(1)
        async with SGLangClient(sglang.url, api_key="wrong", backoff_s=0.001) as c:
            with pytest.raises(ModelError, match="HTTP 401") as err:
                await c.generate(PROMPT, max_new_tokens=10)
            assert "wrong" not in str(err.value) and "wrong" not in repr(c)
    assert "s3cret-key" not in caplog.text


async def test_context_length_from_server_info_is_cached():
    with FakeSGLang(context_length=32768) as sglang:
        async with SGLangClient(sglang.url) as c:
            assert await c.context_length() == 32768
            assert await c.context_length() == 32768
        assert [r["path"] for r in sglang.requests] == ["/server_info"]


async def test_context_length_falls_back_to_older_routes():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/get_server_info":
            return httpx.Response(200, json={"context_length": None, "tp_size": 1})
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "max_model_len": 8192}]})
        return httpx.Response(404, json={"detail": "Not Found"})

    async with SGLangClient("http://sglang.test", transport=httpx.MockTransport(handler)) as c:
        assert await c.context_length() == 8192
    assert seen == ["/server_info", "/get_server_info", "/v1/models"]


async def test_context_length_is_none_when_no_route_says():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    async with SGLangClient("http://sglang.test", transport=httpx.MockTransport(handler)) as c:
        assert await c.context_length() is None


async def test_list_text_and_batch_answers_are_accepted():
    def handler(request: httpx.Request) -> httpx.Response:
        meta = {"finish_reason": {"type": "stop", "matched": 151645}, "prompt_tokens": 3,
                "completion_tokens": 2, "cached_tokens": 1}
        return httpx.Response(200, json=[{"text": ["hi there"], "meta_info": meta}])

    async with SGLangClient("http://sglang.test", transport=httpx.MockTransport(handler)) as c:
        gen = await c.generate("p", max_new_tokens=5)
    assert (gen.text, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens) == ("hi there", 3, 2, 1)


async def test_concurrent_generations_route_by_prompt(sglang, client):
    sglang.add(*(Reply(f"answer {i}", when=rf"question {i}\b") for i in range(6)))
    gens = await asyncio.gather(*(client.generate(f"question {i}?", max_new_tokens=20) for i in reversed(range(6))))
    assert [g.text for g in gens] == [f"answer {i}" for i in reversed(range(6))]


async def test_health(sglang, client):
    assert await client.health() is True
    sglang.down()
    assert await client.health() is False
    sglang.up()
    assert await client.health() is True


# ---- a server that takes requests and never answers ------------------------------------------


class SilentServer:
    """A raw TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


async def test_a_silent_server_is_given_up_after_the_answer_timeout_not_retried(caplog):
    with SilentServer() as server:
        url = f"http://127.0.0.1:{server.port}"
        async with SGLangClient(url, name="search model", backoff_s=0.001, max_retries=3,
                                answer_timeout_s=1.0) as client:
            with caplog.at_level(logging.WARNING), pytest.raises(ModelUnavailableError) as info:
                await client.generate(PROMPT, max_new_tokens=16)
    message = str(info.value)
    assert f"search model server at {url} is not answering" in message
    assert "no answer to POST /generate nor to GET /health in 1 s" in message
    assert "restart it" in message and "fathom serve start" not in message
    assert "\n" not in message
    assert len(server.accepted) == 2  # the request and one /health probe: no retry
    assert "retrying" not in caplog.text


async def test_a_hung_fake_stops_the_request_and_a_healthy_one_serves_the_next(sglang):
    sglang.hang()
    async with SGLangClient(sglang.url, name="search model", backoff_s=0.001, answer_timeout_s=1.0) as client:
        with pytest.raises(ModelUnavailableError, match="is not answering"):
            await client.generate(PROMPT, max_new_tokens=16)
        assert sglang.hung == 2  # /generate and /health, each taken once
        sglang.unhang()
        sglang.add("Paris.")
        assert (await client.generate(PROMPT, max_new_tokens=16)).text == "Paris."


async def test_a_slow_generation_on_a_live_server_may_take_longer_than_the_answer_timeout(sglang):
    sglang.add(Reply("Paris.", delay_s=1.5))
    async with SGLangClient(sglang.url, answer_timeout_s=0.4) as client:
        assert (await client.generate(PROMPT, max_new_tokens=16)).text == "Paris."
    health = [r for r in sglang.requests if r["path"] == "/health"]
    assert health  # the server was asked whether it lives, and it answered


async def test_context_length_on_a_silent_server_is_given_up_too():
    with SilentServer() as server:
        async with SGLangClient(f"http://127.0.0.1:{server.port}", answer_timeout_s=0.6) as client:
            with pytest.raises(ModelUnavailableError, match="GET /server_info nor to GET /health"):
                await client.context_length()


async def test_waiting_sends_model_wait_progress_events(monkeypatch, sglang):
    from fathom.models import watch

    events: list[dict] = []
    monkeypatch.setattr(watch, "notify_waiting", lambda **data: events.append(data))
    sglang.hang()
    async with SGLangClient(sglang.url, name="search model", answer_timeout_s=1.0) as client:
        with pytest.raises(ModelUnavailableError):
            await client.generate(PROMPT, max_new_tokens=16)
    assert len(events) >= 2
    assert {e["model"] for e in events} == {"search model"}
    assert {e["url"] for e in events} == {sglang.url}
    assert events[-1]["waited_s"] >= events[0]["waited_s"] > 0
    assert all(e["answer_timeout_s"] == 1.0 for e in events)


async def test_concurrent_requests_to_a_hung_server_share_one_health_probe(sglang):
    sglang.hang()
    async with SGLangClient(sglang.url, answer_timeout_s=1.0) as client:
        results = await asyncio.gather(
            *(client.generate(PROMPT, max_new_tokens=16) for _ in range(8)), return_exceptions=True
        )
    assert all(isinstance(r, ModelUnavailableError) and "is not answering" in str(r) for r in results)
    assert sglang.hung == 8 + 1  # eight requests, one /health probe between them
