"""app/services: the one place settings become clients. Keys are bound to their endpoints."""

from __future__ import annotations

import pytest

from fathom.app.services import build_services, query_llm_key
from fathom.errors import ConfigError
from fathom.settings import Settings
from tests.fakes.sglang import FakeSGLang

OPENAI_KEY = "sk-openai-never-elsewhere"
MODEL_KEY = "model-key-for-sglang-only"
QUERY_KEY = "query-llm-key"
CHAT = [{"role": "user", "content": "Is the sky blue?"}]


def settings_for(search: FakeSGLang, synth: FakeSGLang, query: FakeSGLang, **extra: object) -> Settings:
    return Settings(
        search_model_url=search.url,
        synth_model_url=synth.url,
        query_llm=query.url + "/v1",
        openai_api_key=OPENAI_KEY,
        model_api_key=MODEL_KEY,
        searxng_url="http://127.0.0.1:9",
        no_cache=True,
        **extra,
    )


async def use_every_client(settings: Settings) -> None:
    async with build_services(settings) as services:
        assert services.judge is not None and services.synth is not None
        await services.judge.complete(CHAT)  # the judge is the query LLM when one is configured
        await services.synth.generate("Write.", max_new_tokens=8)
        await services.synth.context_length()


async def test_a_custom_query_llm_url_never_receives_another_endpoints_key() -> None:
    with FakeSGLang(["a"] * 4) as search, FakeSGLang(["b"] * 4) as synth, FakeSGLang(["c"] * 4) as query:
        await use_every_client(settings_for(search, synth, query))
        assert query.authorizations, "the query LLM was not called"
        # Neither OpenAI's key nor the model servers' (the SDK sends a placeholder when there is none).
        assert set(query.authorizations) <= {None, "Bearer EMPTY"}
        assert synth.authorizations and set(synth.authorizations) == {f"Bearer {MODEL_KEY}"}


async def test_the_query_llm_key_goes_only_to_the_query_llm() -> None:
    with FakeSGLang(["a"] * 4) as search, FakeSGLang(["b"] * 4) as synth, FakeSGLang(["c"] * 4) as query:
        await use_every_client(settings_for(search, synth, query, query_llm_api_key=QUERY_KEY))
        assert set(query.authorizations) == {f"Bearer {QUERY_KEY}"}
        assert set(synth.authorizations) == {f"Bearer {MODEL_KEY}"}
        assert f"Bearer {QUERY_KEY}" not in search.authorizations + synth.authorizations


async def test_the_judge_on_the_search_models_route_gets_the_model_key_only() -> None:
    with FakeSGLang(["a"] * 4) as search, FakeSGLang(["b"] * 4) as synth:
        settings = Settings(search_model_url=search.url, synth_model_url=synth.url, openai_api_key=OPENAI_KEY,
                            model_api_key=MODEL_KEY, searxng_url="http://127.0.0.1:9", no_cache=True)
        async with build_services(settings) as services:
            assert services.judge is not None
            await services.judge.complete(CHAT)
        assert search.authorizations and set(search.authorizations) == {f"Bearer {MODEL_KEY}"}


def test_openai_key_is_for_openai_specs_only() -> None:
    assert query_llm_key(Settings(query_llm="openai:gpt-4.1-mini", openai_api_key=OPENAI_KEY)) == OPENAI_KEY
    assert query_llm_key(Settings(query_llm="http://127.0.0.1:8905/v1", openai_api_key=OPENAI_KEY)) is None
    assert query_llm_key(Settings(query_llm="http://127.0.0.1:8905/v1", query_llm_api_key=QUERY_KEY)) == QUERY_KEY


async def test_studio_saver_and_tool_caches_share_one_database(tmp_path, monkeypatch) -> None:
    """`langgraph dev` opens the run database once: the saver and the graph's caches share it."""
    from fathom.app.services import services_for
    from fathom.app.studio import studio_checkpointer

    monkeypatch.setenv("FATHOM_DB_URL", f"sqlite:///{tmp_path}/studio.db")
    monkeypatch.setenv("SEARXNG_URL", "http://127.0.0.1:9")
    async with studio_checkpointer() as saver:
        services = await services_for({"settings": {"max_rounds": 4}})
        assert services.tools.cache is not None and services.tools.cache.db is saver.db
        await services.aclose()
    assert (tmp_path / "studio.db").exists()


def test_a_setting_that_cannot_work_fails_before_any_client_is_built() -> None:
    with pytest.raises(ConfigError, match="TAVILY_API_KEY"):
        build_services(Settings(search_backend="tavily", no_cache=True))
    with pytest.raises(ConfigError, match="query LLM 'openai:gpt-4.1-mini'"):
        build_services(Settings(query_llm="openai:gpt-4.1-mini", searxng_url="http://127.0.0.1:9", no_cache=True))
