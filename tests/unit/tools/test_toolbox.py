"""The Toolbox end to end: search_urls and query_url against fake search, fake web and fake query
LLMs on 127.0.0.1, with the exact texts the model reads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fathom.app.services import toolbox
from fathom.errors import ConfigError
from fathom.protocols.prompts.tools import READER_NOTES
from fathom.settings import Settings
from fathom.tools.base import SearchHit
from fathom.tools.evidence import EvidenceExtractor
from fathom.tools.fetch import Fetcher
from fathom.tools.toolbox import INVALID_URL, Toolbox
from tests.fakes.search_apis import FakeSearxng, FakeSerper
from tests.fakes.web import FakeChatLLM, FakeWeb

GOAL = "When was the Kestrel Bridge opened?"


@pytest.fixture(scope="module")
def web() -> Iterator[FakeWeb]:
    with FakeWeb(slow_s=30) as fake:
        yield fake


@pytest.fixture(scope="module")
def internal() -> Iterator[FakeWeb]:
    with FakeWeb() as fake:
        fake.add_page("/secret", "<p>internal secret</p>")
        yield fake


@pytest.fixture(scope="module")
def searxng(web: FakeWeb) -> Iterator[FakeSearxng]:
    results = [
        {"title": "Kestrel Bridge", "url": web.url("/article"), "snippet": "A wrought-iron truss bridge."},
        {"title": "Lake Vostrand", "url": web.url("/wiki/Lake_Vostrand"), "snippet": "A glacial lake."},
    ]
    with FakeSearxng(results) as fake:
        yield fake


def settings_for(web: FakeWeb, searxng: FakeSearxng | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"allow_hosts": (web.hostport,), "fetch_timeout_s": 5.0, "tool_timeout_s": 10.0}
    if searxng is not None:
        values["searxng_url"] = searxng.url
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def tools(web: FakeWeb, searxng: FakeSearxng):
    async with toolbox(settings_for(web, searxng)) as built:
        yield built


@dataclass
class Reply:
    content: str


class ScriptedLLM:
    def __init__(self, reply: str, delay_s: float = 0.0) -> None:
        self.reply, self.delay_s, self.calls = reply, delay_s, 0

    async def complete(self, messages: list[dict[str, Any]], temperature: float = 0.0,
                       max_tokens: int = 1024) -> Reply:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return Reply(self.reply)


class StuckBackend:
    """A search backend that never answers; records whether it was cancelled."""

    name = "stuck"

    def __init__(self) -> None:
        self.cancelled = False

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return []

    async def aclose(self) -> None:
        return None


# ---- search_urls ------------------------------------------------------------------------------------


async def test_search_urls(tools: Toolbox, web: FakeWeb) -> None:
    outcome = await tools.search_urls("kestrel bridge")
    assert outcome.ok
    assert outcome.text == (
        f"### 1. Kestrel Bridge\n**URL**: {web.url('/article')}\n\n**Snippet**: A wrought-iron truss bridge.\n"
        "\n---\n\n"
        f"### 2. Lake Vostrand\n**URL**: {web.url('/wiki/Lake_Vostrand')}\n\n**Snippet**: A glacial lake.\n"
    )
    assert outcome.sources == [{"url": web.url("/article"), "title": "Kestrel Bridge"},
                               {"url": web.url("/wiki/Lake_Vostrand"), "title": "Lake Vostrand"}]


async def test_search_urls_top_k_and_empty_results(tools: Toolbox, searxng: FakeSearxng) -> None:
    assert len((await tools.search_urls("kestrel", top_k=1)).sources) == 1
    assert len((await tools.search_urls("kestrel", top_k="2")).sources) == 2  # type: ignore[arg-type]
    saved = searxng.results
    searxng.set_results([])
    try:
        outcome = await tools.search_urls("nothing at all")
    finally:
        searxng.set_results(saved)
    assert outcome.ok and outcome.text == 'No results found for "nothing at all".' and outcome.sources == []


async def test_search_urls_empty_query(tools: Toolbox) -> None:
    outcome = await tools.search_urls("   ")
    assert not outcome.ok and outcome.text == "[error] search_urls needs a non-empty query"


async def test_search_error_is_one_line(web: FakeWeb) -> None:
    with FakeSerper(api_key="right") as serper:
        settings = settings_for(web, serper_api_key="wrong", serper_url=serper.url)
        async with toolbox(settings) as tools:
            outcome = await tools.search_urls("q")
    assert not outcome.ok
    assert outcome.text == ("[error] search failed: Serper rejected the API key (HTTP 403: Unauthorized.); "
                            "check SERPER_API_KEY")
    assert "\n" not in outcome.text


async def test_search_deadline_cancels_the_backend(web: FakeWeb) -> None:
    backend = StuckBackend()
    async with toolbox(settings_for(web, tool_timeout_s=0.3), search_backend=backend) as tools:
        outcome = await tools.search_urls("q")
    assert outcome == outcome.__class__(text="[error] search timed out after 0.3 s", ok=False)
    assert backend.cancelled


# ---- query_url --------------------------------------------------------------------------------------------


async def test_query_url_extractive(tools: Toolbox, web: FakeWeb) -> None:
    web.reset()
    url = web.url("/article")
    outcome = await tools.query_url(url, GOAL)
    assert outcome.ok
    assert outcome.text.startswith(f"The useful information in {url} for goal \u201c{GOAL}\u201d:\n\n"
                                   "Evidence (extracted passages):\n")
    assert "officially opened on 14 June 1897" in outcome.text
    assert "TRACKING-SCRIPT" not in outcome.text and "Contact us" not in outcome.text
    assert outcome.sources == [{"url": url, "title": "Kestrel Bridge \u2013 History and Engineering | Rivertown Heritage"}]
    assert web.hits["/article"] == 1


async def test_query_url_after_redirects_names_both_urls(tools: Toolbox, web: FakeWeb) -> None:
    outcome = await tools.query_url(web.url("/r1"), "where does it end")
    assert outcome.ok
    assert [s["url"] for s in outcome.sources] == [web.url("/r1"), web.url("/final")]


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/page", "", "javascript:alert(1)",
                                 "http://", "file:///etc/passwd", "http://example.com:bad/"])
async def test_query_url_invalid_url(tools: Toolbox, url: str) -> None:
    outcome = await tools.query_url(url, GOAL)
    assert outcome.text == INVALID_URL == "[error] invalid URL \u2013 must start with http:// or https://"
    assert not outcome.ok and outcome.sources == []


async def test_query_url_404(tools: Toolbox, web: FakeWeb) -> None:
    url = web.url("/gone")
    outcome = await tools.query_url(url, GOAL)
    assert not outcome.ok
    assert outcome.text == f"[error] could not fetch {url}: HTTP 404 Not Found"


async def test_query_url_binary(tools: Toolbox, web: FakeWeb) -> None:
    url = web.url("/image.png")
    outcome = await tools.query_url(url, GOAL)
    assert outcome.text == f"[error] could not read {url}: it is a binary file (image/png); it cannot be read"
    assert not outcome.ok


@pytest.mark.parametrize("reader", ["static", "auto"])
async def test_query_url_empty_page(reader: str, web: FakeWeb, searxng: FakeSearxng, tmp_path: Path) -> None:
    """No text: with ``--reader auto`` and no browser to run the page's scripts, the model is
    told that too (the browser path named here does not exist, whatever this machine has)."""
    url = web.url("/empty")
    settings = settings_for(web, searxng, reader=reader, browser_path=str(tmp_path / "no-chromium"))
    async with toolbox(settings) as tools:
        outcome = await tools.query_url(url, GOAL)
    hint = "" if reader == "static" else "; browser: " + READER_NOTES.browser_missing
    assert outcome.text == f"[error] could not read {url}: the page has no readable text{hint}"


async def test_query_url_redirect_to_internal_service(tools: Toolbox, web: FakeWeb, internal: FakeWeb) -> None:
    web.add_redirect("/go-internal", internal.url("/secret"))
    internal.reset()
    url = web.url("/go-internal")
    outcome = await tools.query_url(url, GOAL)
    assert outcome.text == f"[error] could not fetch {url}: refused: 127.0.0.1 is a loopback address"
    assert sum(internal.hits.values()) == 0


async def test_query_url_tool_deadline(web: FakeWeb, searxng: FakeSearxng) -> None:
    settings = settings_for(web, searxng, tool_timeout_s=0.5, fetch_timeout_s=20.0)
    async with toolbox(settings) as tools:
        url = web.url("/slow")
        outcome = await tools.query_url(url, GOAL)
    assert outcome.text == f"[error] query_url timed out after 0.5 s for {url}"


async def test_query_url_per_host_cap(web: FakeWeb, searxng: FakeSearxng) -> None:
    for i in range(8):
        web.add_page(f"/busy/{i}", f"<p>Busy page {i} about bridges.</p>", delay_s=0.1)
    web.reset()
    tools = Toolbox(
        search_backend=StuckBackend(),
        fetcher=Fetcher(allow_hosts=[web.hostport], timeout_s=5),
        extractor=EvidenceExtractor(),
        per_host_fetches=2,
    )
    try:
        outcomes = await asyncio.gather(*(tools.query_url(web.url(f"/busy/{i}"), "bridges") for i in range(8)))
    finally:
        await tools.fetcher.aclose()
    assert all(o.ok for o in outcomes)
    assert web.max_in_flight == 2


async def test_query_url_with_query_llm(web: FakeWeb, searxng: FakeSearxng) -> None:
    llm = ScriptedLLM("Rationale: History section.\nEvidence:\n- opened on 14 June 1897\nSummary: 14 June 1897.")
    async with toolbox(settings_for(web, searxng), query_llm=llm) as tools:
        url = web.url("/article")
        outcome = await tools.query_url(url, GOAL)
    assert outcome.ok and llm.calls == 1
    assert outcome.text == (f"The useful information in {url} for goal \u201c{GOAL}\u201d:\n\n"
                            "Rationale:\nHistory section.\n\nEvidence:\n- opened on 14 June 1897\n\n"
                            "Summary:\n14 June 1897.")


async def test_slow_query_llm_falls_back_before_the_tool_deadline(web: FakeWeb, searxng: FakeSearxng) -> None:
    llm = ScriptedLLM("Summary: too late", delay_s=30)
    async with toolbox(settings_for(web, searxng, tool_timeout_s=1.0), query_llm=llm) as tools:
        outcome = await tools.query_url(web.url("/article"), GOAL)
    assert outcome.ok
    assert "Evidence (extracted passages):" in outcome.text


async def test_query_llm_from_settings(web: FakeWeb, searxng: FakeSearxng) -> None:
    pytest.importorskip("fathom.models.chat", reason="fathom.models.chat is not written yet")
    reply = "Rationale:\nIt says so.\n\nEvidence:\n- opened on 14 June 1897\n\nSummary:\nOpened in 1897."
    with FakeChatLLM([reply]) as server:
        async with toolbox(settings_for(web, searxng, query_llm=server.base_url)) as tools:
            outcome = await tools.query_url(web.url("/article"), GOAL)
    assert outcome.ok and outcome.text.endswith("Summary:\nOpened in 1897.")
    assert len(server.requests) == 1 and server.requests[0]["temperature"] == 0.0


def test_unusable_query_llm_fails_at_construction(web: FakeWeb, searxng: FakeSearxng) -> None:
    with pytest.raises(ConfigError, match="query LLM 'openai:gpt-4.1-mini'"):
        toolbox(settings_for(web, searxng, query_llm="openai:gpt-4.1-mini"))
