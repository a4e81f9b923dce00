"""Settings: precedence, validation messages, and secrets kept out of what runs record."""

from __future__ import annotations

import pytest

from fathom.settings import ConfigError, Settings


def test_defaults_match_the_documented_contract():
    s = Settings.load(environ={})
    assert s.search_model_url == "http://127.0.0.1:8902"
    assert s.synth_model_url == "http://127.0.0.1:8903"
    assert s.query_llm == "none"
    assert s.max_rounds == 64
    assert s.allow_hosts == ()
    assert s.resolved_search_backend == "ddg"


@pytest.mark.parametrize(
    "env, backend",
    [
        ({"TAVILY_API_KEY": "t", "SERPER_API_KEY": "s", "SEARXNG_URL": "http://127.0.0.1:1"}, "tavily"),
        ({"SERPER_API_KEY": "s", "SEARXNG_URL": "http://127.0.0.1:1"}, "serper"),
        ({"SEARXNG_URL": "http://127.0.0.1:1"}, "searxng"),
        ({"FATHOM_SEARCH_BACKEND": "ddg", "TAVILY_API_KEY": "t"}, "ddg"),
    ],
)
def test_search_backend_follows_the_keys_present(env, backend):
    assert Settings.load(environ=env).resolved_search_backend == backend


def test_context_strategy_folds_by_default_and_reaches_the_nodes():
    from fathom.app.services import research_config

    assert Settings.load(environ={}).context_strategy == "fold"
    answer = Settings.load(environ={"FATHOM_CONTEXT_STRATEGY": "answer"})
    assert answer.context_strategy == "answer"
    assert research_config(answer).context_strategy == "answer"
    assert Settings.load({"context_strategy": "fold"}, environ={"FATHOM_CONTEXT_STRATEGY": "answer"}).context_strategy == "fold"


def test_flags_override_env_which_overrides_the_file(tmp_path):
    config = tmp_path / "fathom.toml"
    config.write_text('[fathom]\nmax_rounds = 10\nsearch_model_url = "http://127.0.0.1:1111"\nquery_llm = "openai:gpt-4.1-mini"\n')
    env = {"FATHOM_MAX_ROUNDS": "20", "FATHOM_ALLOW_HOSTS": "127.0.0.1:8000, Example.org"}
    s = Settings.load({"max_rounds": 30, "search_model_url": None}, config_file=config, environ=env)
    assert s.max_rounds == 30
    assert s.search_model_url == "http://127.0.0.1:1111"
    assert s.query_llm == "openai:gpt-4.1-mini"
    assert s.allow_hosts == ("127.0.0.1:8000", "example.org")


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"max_rounds": 0}, "--max-rounds / FATHOM_MAX_ROUNDS"),
        ({"search_model_url": "127.0.0.1:8902"}, "must start with http:// or https://"),
        ({"query_llm": "gpt-4.1-mini"}, "'openai:MODEL'"),
        ({"search_backend": "bing"}, "--search-backend"),
        ({"allow_hosts": ["http://x/y"]}, "not a host[:port] entry"),
        ({"context_strategy": "summarize"}, "--context-strategy / FATHOM_CONTEXT_STRATEGY"),
    ],
)
def test_bad_values_give_one_clear_line(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        Settings.load(overrides, environ={})
    message = str(err.value)
    assert fragment in message and "\n" not in message


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(config_file=tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("max_rounds = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(config_file=bad, environ={})
    secret = tmp_path / "secret.toml"
    secret.write_text('tavily_api_key = "abc"\n')
    with pytest.raises(ConfigError, match="keep API keys in the environment"):
        Settings.load(config_file=secret, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("max_roundz = 3\n")
    with pytest.raises(ConfigError, match="max_roundz: is not a known setting"):
        Settings.load(config_file=unknown, environ={})


def test_secrets_never_appear_in_public_settings_or_repr():
    s = Settings.load(environ={"TAVILY_API_KEY": "tvly-SECRET", "OPENAI_API_KEY": "sk-SECRET"})
    assert s.resolved_search_backend == "tavily"
    assert "SECRET" not in str(s.public_dict())
    assert "SECRET" not in repr(s)
    assert s.tavily_api_key.get_secret_value() == "tvly-SECRET"
