"""ChatClient (openai SDK) against the fake SGLang server's /v1 routes over loopback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fathom.models.base import ContextLengthError, ModelError, ModelNotAnsweringError, ModelUnavailableError
from fathom.models.chat import OPENAI_BASE_URL, ChatClient
from tests.fakes.server import free_port
from tests.fakes.sglang import FakeSGLang, Reply

MESSAGES = [{"role": "system", "content": "Extract evidence."}, {"role": "user", "content": "Page: ..."}]
TOOLS = [{"type": "function", "function": {"name": "search_urls", "description": "search",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]


@pytest.fixture
def fake():
    with FakeSGLang(model_path="Qwen/Qwen3-4B") as server:
        yield server


@pytest.fixture
async def chat(fake):
    client = ChatClient.from_spec(fake.url + "/v1", api_key=None, backoff_s=0.001)
    assert client is not None
    async with client:
        yield client


def chat_requests(fake: FakeSGLang) -> list[dict]:
    return [r for r in fake.requests if r["path"] == "/v1/chat/completions"]


# ---- from_spec -------------------------------------------------------------------------------


def test_from_spec_none_is_no_client():
    assert ChatClient.from_spec("none", api_key="k") is None


async def test_from_spec_openai_uses_openais_url_and_needs_a_key():
    client = ChatClient.from_spec("openai:gpt-4.1-mini", api_key="sk-test")
    assert client is not None
    assert (client.base_url, client.model, client.is_openai) == (OPENAI_BASE_URL, "gpt-4.1-mini", True)
    assert "sk-test" not in repr(client)
    await client.aclose()  # constructed only: nothing is sent
    with pytest.raises(ModelError, match="needs an API key: set OPENAI_API_KEY"):
        ChatClient.from_spec("openai:gpt-4.1-mini", api_key=None)
    with pytest.raises(ModelError, match="needs a model name"):
        ChatClient.from_spec("openai:", api_key="sk-test")


def test_from_spec_rejects_what_it_does_not_understand():
    with pytest.raises(ModelError, match="'gpt-4.1-mini' is not understood"):
        ChatClient.from_spec("gpt-4.1-mini", api_key=None)


async def test_from_spec_url_discovers_the_model_once(fake, chat):
    fake.add("one", "two")
    assert chat.model == ""
    await chat.complete(MESSAGES)
    await chat.complete(MESSAGES)
    assert chat.model == "Qwen/Qwen3-4B"
    assert [r["path"] for r in fake.requests].count("/v1/models") == 1
    assert all(r["json"]["model"] == "Qwen/Qwen3-4B" for r in chat_requests(fake))
    assert all(r["headers"].get("authorization") is None for r in fake.requests)  # never recorded


# ---- completions -----------------------------------------------------------------------------


async def test_complete_returns_content_usage_and_reasoning(fake, chat):
    fake.add("<think>the page says 1889</think>\n\nThe tower opened in 1889.", "again")
    result = await chat.complete(MESSAGES, temperature=0.2, max_tokens=300, extra_body={"top_k": 20})
    assert result.content == "The tower opened in 1889."
    assert result.reasoning == "the page says 1889"
    assert result.finish_reason == "stop" and result.tool_calls == []
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cached_tokens == 0
    body = chat_requests(fake)[0]["json"]
    assert (body["max_tokens"], body["temperature"], body["top_k"]) == (300, 0.2, 20)
    again = await chat.complete(MESSAGES)
    assert again.cached_tokens > 0  # same prompt: the radix cache is reported


async def test_complete_returns_tool_calls_with_raw_json_arguments(fake, chat):
    fake.add('<think>search</think>\n<tool_call>\n{"name": "search_urls", "arguments": {"query": "eiffel"}}\n</tool_call>')
    result = await chat.complete(MESSAGES, tools=TOOLS)
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call["name"] == "search_urls" and call["id"]
    assert json.loads(call["arguments"]) == {"query": "eiffel"}
    assert chat_requests(fake)[0]["json"]["tools"] == TOOLS


async def test_length_finish(fake, chat):
    fake.add("z" * 500)
    result = await chat.complete(MESSAGES, max_tokens=8)
    assert (result.finish_reason, result.completion_tokens, result.content) == ("length", 8, "z" * 32)


# ---- errors ----------------------------------------------------------------------------------


async def test_context_overflow_is_a_context_length_error():
    with FakeSGLang(["never"], context_length=64) as fake:
        async with ChatClient(fake.url + "/v1", "m", api_key=None, backoff_s=0.001) as chat:
            with pytest.raises(ContextLengthError) as err:
                await chat.complete(MESSAGES, max_tokens=60)
        assert "maximum context length of 64 tokens" in str(err.value) and "\n" not in str(err.value)
        assert len(chat_requests(fake)) == 1


async def test_5xx_is_retried_then_succeeds(fake, chat):
    fake.fail_next(2, status=503)
    fake.add("fine")
    assert (await chat.complete(MESSAGES)).content == "fine"
    assert len(chat_requests(fake)) == 3


async def test_5xx_forever_is_unavailable(fake):
    fake.fail_next(10, status=500)
    async with ChatClient(fake.url + "/v1", "m", api_key=None, max_retries=2, backoff_s=0.001) as chat:
        with pytest.raises(ModelUnavailableError, match="after 3 attempts: HTTP 500"):
            await chat.complete(MESSAGES)
    assert len(chat_requests(fake)) == 3


async def test_other_4xx_is_a_model_error_without_retry(fake, chat):
    fake.add(Reply(status=400, error="messages[1].content is invalid"))
    with pytest.raises(ModelError, match=r"HTTP 400\): messages\[1\].content is invalid") as err:
        await chat.complete(MESSAGES)
    assert not isinstance(err.value, ModelUnavailableError)
    assert len(chat_requests(fake)) == 1


async def test_server_down_is_unavailable():
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with ChatClient(url, "m", api_key=None, max_retries=1, backoff_s=0.001) as chat:
        with pytest.raises(ModelUnavailableError) as err:
            await chat.complete(MESSAGES)
    assert str(err.value) == f"query LLM at {url} is unreachable after 2 attempts: connection refused"


async def test_timeout_is_unavailable(fake):
    fake.add(Reply("late", delay_s=30))
    async with ChatClient(fake.url + "/v1", "m", api_key=None, timeout_s=0.2, max_retries=0) as chat:
        with pytest.raises(ModelUnavailableError, match=r"no answer within 0.2 s"):
            await chat.complete(MESSAGES)


async def test_abort_finish_is_a_model_error(fake, chat):
    fake.add(Reply(finish_reason="abort", error="cancelled"))
    with pytest.raises(ModelError, match="aborted the completion"):
        await chat.complete(MESSAGES)


async def test_api_key_is_sent_and_a_wrong_one_is_refused():
    with FakeSGLang(["ok"], api_key="key-123") as fake:
        async with ChatClient(fake.url + "/v1", "m", api_key="key-123") as chat:
            assert (await chat.complete(MESSAGES)).content == "ok"
        async with ChatClient(fake.url + "/v1", "m", api_key="nope", backoff_s=0.001) as chat:
            with pytest.raises(ModelError, match="HTTP 401") as err:
                await chat.complete(MESSAGES)
        assert "nope" not in str(err.value)


# ---- a server that takes requests and never answers (the SGLang client's check, shared) ------


async def test_a_hung_server_is_given_up_after_the_answer_timeout_not_retried(fake, monkeypatch, caplog):
    from fathom.models import watch

    events: list[dict] = []
    monkeypatch.setattr(watch, "notify_waiting", lambda **data: events.append(data))
    fake.hang()
    url = fake.url + "/v1"
    async with ChatClient(url, "m", api_key=None, max_retries=3, backoff_s=0.001, name="search model",
                          answer_timeout_s=1.0) as chat:
        with caplog.at_level("WARNING"), pytest.raises(ModelNotAnsweringError) as err:
            await chat.complete(MESSAGES)
        message = str(err.value)
        assert message.startswith(f"search model at {url} is not answering: no answer to POST /v1/chat/completions "
                                  "nor to GET /v1/models in 1 s (FATHOM_MODEL_ANSWER_TIMEOUT)")
        assert "\n" not in message and "retrying" not in caplog.text
        assert fake.hung == 2  # the chat request and one /v1/models probe: no retry
        assert events and {(e["model"], e["url"]) for e in events} == {("search model", url)}
        fake.unhang()  # the same client serves the next request once the server answers
        fake.add("back")
        assert (await chat.complete(MESSAGES)).content == "back"


async def test_model_discovery_on_a_hung_server_is_given_up_too(fake):
    fake.hang()
    async with ChatClient(fake.url + "/v1", None, api_key=None, answer_timeout_s=0.6) as chat:
        with pytest.raises(ModelNotAnsweringError, match=r"no answer to GET /v1/models in 0.6 s \(FATHOM_"):
            await chat.complete(MESSAGES)


async def test_a_slow_completion_on_a_live_server_may_take_longer_than_the_answer_timeout(fake):
    fake.add(Reply("slow but fine", delay_s=1.5))
    async with ChatClient(fake.url + "/v1", "m", api_key=None, answer_timeout_s=0.4) as chat:
        assert (await chat.complete(MESSAGES)).content == "slow but fine"
    assert [r for r in fake.requests if r["path"] == "/v1/models"]  # asked whether it lives; it answered


def test_chat_client_needs_no_langchain_openai():
    """The raw openai SDK is enough (ChatOpenAI would drop reasoning_content)."""
    code = (
        "import sys\n"
        "import fathom.models.chat, fathom.models.sglang\n"
        "assert 'langchain_openai' not in sys.modules, 'langchain_openai was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
