"""The SQL caches of searches, pages and evidence: on every database, in the toolbox, across runs,
and from the command line (``--no-cache``, ``fathom cache clear``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fathom.app.runs import run_question
from fathom.app.services import build_services
from fathom.app.services import toolbox as make_toolbox
from fathom.settings import Settings
from fathom.store.cache import ToolCache
from fathom.tools.base import SearchHit
from fathom.tools.extract import Document
from fathom.tools.toolbox import Toolbox
from tests.conftest import fake_env, fake_settings, research_script
from tests.fakes.search_apis import FakeSearxng
from tests.fakes.web import FakeWeb
from tests.support.checkpoints import backend_url

__all__ = ["backend_url"]  # fixture: SQLite, PostgreSQL and MariaDB (skipped when unreachable)

HITS = [SearchHit(title="Kestrel Bridge", url="https://a.example/k", snippet="Opened in 1897.")]
DOC = Document(url="https://a.example/final", title="Kestrel", text="The bridge opened in 1897.", truncated=True)
DAY = 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cache(backend_url: str) -> AsyncIterator[tuple[ToolCache, Clock]]:
    clock = Clock()
    async with ToolCache.open(backend_url, ttl_s=DAY, negative_ttl_s=60, clock=clock) as opened:
        yield opened, clock


async def test_search_results_round_trip_by_normalised_query(cache: tuple[ToolCache, Clock]) -> None:
    tools, _ = cache
    assert await tools.get_search("serper", "kestrel bridge", 10) is None
    await tools.put_search("serper", "Kestrel  Bridge", 10, HITS)
    assert await tools.get_search("serper", " kestrel bridge ", 10) == HITS
    assert await tools.get_search("serper", "kestrel bridge", 5) is None  # top_k is part of the key
    assert await tools.get_search("tavily", "kestrel bridge", 10) is None  # and so is the backend
    await tools.put_search("serper", "nothing at all", 10, [])  # "no results" is never cached
    assert await tools.get_search("serper", "nothing at all", 10) is None


async def test_entries_expire_after_the_ttl(cache: tuple[ToolCache, Clock]) -> None:
    tools, clock = cache
    await tools.put_search("serper", "q", 10, HITS)
    await tools.put_page("https://a.example/k", DOC, "html")
    await tools.put_evidence("https://a.example/k", "goal", "extractive/6000", "evidence", [])
    clock.now += DAY - 1
    assert await tools.get_search("serper", "q", 10) == HITS
    assert (await tools.get_page("https://a.example/k")).document == DOC  # type: ignore[union-attr]
    assert await tools.get_evidence("https://a.example/k", "goal", "extractive/6000") is not None
    clock.now += 2
    assert await tools.get_search("serper", "q", 10) is None
    assert await tools.get_page("https://a.example/k") is None
    assert await tools.get_evidence("https://a.example/k", "goal", "extractive/6000") is None


async def test_pages_are_keyed_by_normalised_url_and_failures_kept_briefly(cache: tuple[ToolCache, Clock]) -> None:
    tools, clock = cache
    await tools.put_page("https://www.a.example/k/?utm_source=x#top", DOC)
    cached = await tools.get_page("http://a.example/k")
    assert cached is not None and cached.document == DOC

    await tools.put_page_failure("https://a.example/gone", "fetch", "HTTP 404 Not Found")
    failure = await tools.get_page("https://a.example/gone")
    assert failure is not None and failure.document is None
    assert (failure.stage, failure.error) == ("fetch", "HTTP 404 Not Found")
    clock.now += 61  # past the negative TTL, long before the TTL
    assert await tools.get_page("https://a.example/gone") is None


async def test_evidence_is_keyed_by_url_goal_and_extractor(cache: tuple[ToolCache, Clock]) -> None:
    tools, _ = cache
    sources = [{"url": "https://a.example/k", "title": "Kestrel"}]
    await tools.put_evidence("https://a.example/k", "When did it open?", "llm/x", "It opened in 1897.", sources)
    hit = await tools.get_evidence("https://a.example/k", "When  did it open?", "llm/x")
    assert hit is not None and hit.text == "It opened in 1897." and hit.sources == sources
    assert await tools.get_evidence("https://a.example/k", "When did it close?", "llm/x") is None
    assert await tools.get_evidence("https://a.example/k", "When did it open?", "extractive/6000") is None
    assert await tools.get_evidence("http://a.example/k", "When did it open?", "llm/x") is None


async def test_size_is_bounded_oldest_rows_go_first(backend_url: str) -> None:
    clock = Clock()
    async with ToolCache.open(backend_url, max_rows=3, prune_every=1, clock=clock) as tools:
        for n in range(6):
            clock.now += 1
            await tools.put_search("serper", f"query {n}", 10, HITS)
        assert (await tools.sizes())["search"] == 3
        assert [await tools.get_search("serper", f"query {n}", 10) is not None for n in range(6)] == [
            False, False, False, True, True, True]


async def test_clear_empties_every_cache(cache: tuple[ToolCache, Clock]) -> None:
    tools, _ = cache
    await tools.put_search("serper", "q", 10, HITS)
    await tools.put_page("https://a.example/k", DOC)
    await tools.put_evidence("https://a.example/k", "g", "e", "t", [])
    assert await tools.sizes() == {"search": 1, "pages": 1, "evidence": 1}
    assert await tools.clear() == {"search": 1, "pages": 1, "evidence": 1}
    assert await tools.sizes() == {"search": 0, "pages": 0, "evidence": 0}


async def test_a_broken_database_turns_the_cache_off_quietly(tmp_path: Path) -> None:
    async with ToolCache.open(f"sqlite:///{tmp_path}/missing-dir/cache.db") as tools:
        assert await tools.get_search("serper", "q", 10) is None
        await tools.put_search("serper", "q", 10, HITS)
        assert tools.disabled and "does not exist" in tools.disabled


# ---- in the toolbox ----------------------------------------------------------------------------


def searches(searxng: FakeSearxng) -> int:
    """Searches the engine was asked for (SearXNG is asked for a second page of results too)."""
    return sum(1 for r in searxng.requests if r["params"].get("pageno", "1") == "1")


@pytest.fixture
async def toolbox(web: FakeWeb, searxng: FakeSearxng, db_url: str) -> AsyncIterator[Toolbox]:
    settings = Settings(allow_hosts=(web.hostport,), searxng_url=searxng.url, fetch_timeout_s=5, tool_timeout_s=10)
    async with ToolCache.open(db_url) as cache, make_toolbox(settings, cache=cache) as tools:
        yield tools


async def test_toolbox_reuses_searches_pages_and_evidence(toolbox: Toolbox, web: FakeWeb, searxng: FakeSearxng) -> None:
    first = await toolbox.search_urls("Kestrel Bridge opening")
    again = await toolbox.search_urls("kestrel bridge  opening")
    assert again == first and searches(searxng) == 1

    goal = "When did the Kestrel Bridge open?"
    read = await toolbox.query_url(web.url("/article"), goal)
    assert read.ok and "14 June 1897" in read.text
    assert await toolbox.query_url(web.url("/article"), goal) == read
    other = await toolbox.query_url(web.url("/article"), "How long is the main span?")  # page cached
    assert other.ok and "62 metres" in other.text
    assert web.hits["/article"] == 1
    assert toolbox.cache is not None and toolbox.cache.counts["evidence_hit"] == 1
    assert toolbox.cache.counts["pages_hit"] == 1


async def test_lasting_failures_are_remembered_transient_ones_are_not(toolbox: Toolbox, web: FakeWeb) -> None:
    web.add_page("/flaky", "<p>try later</p>", status=503)
    for _ in range(2):
        gone = await toolbox.query_url(web.url("/gone"), "anything")
        image = await toolbox.query_url(web.url("/image.png"), "anything")
        flaky = await toolbox.query_url(web.url("/flaky"), "anything")
    assert gone.text == f"[error] could not fetch {web.url('/gone')}: HTTP 404 Not Found"
    assert image.text.startswith(f"[error] could not read {web.url('/image.png')}: it is a binary file")
    assert "HTTP 503" in flaky.text
    assert (web.hits["/gone"], web.hits["/image.png"], web.hits["/flaky"]) == (1, 1, 2)


async def test_query_llm_fallbacks_are_not_cached(web: FakeWeb, db_url: str) -> None:
    class Failing:
        model, calls = "broken", 0

        async def complete(self, *args: object, **kwargs: object) -> object:
            Failing.calls += 1
            raise RuntimeError("down")

    settings = Settings(allow_hosts=(web.hostport,), searxng_url="http://127.0.0.1:9", tool_timeout_s=10)
    async with ToolCache.open(db_url) as cache, make_toolbox(settings, cache=cache, query_llm=Failing()) as tools:
        for _ in range(2):
            assert (await tools.query_url(web.url("/article"), "When did it open?")).ok
    assert Failing.calls == 2 and web.hits["/article"] == 1  # the page was cached, the fallback not


# ---- across runs -------------------------------------------------------------------------------


async def research_once(settings: Settings, run_id: str) -> dict:
    async with build_services(settings) as services:
        return await run_question("When did the Kestrel Bridge open?", settings, run_id=run_id, services=services)


@pytest.mark.parametrize(("options", "cached"), [({}, True), ({"no_cache": True}, False), ({"cache_ttl_s": 0}, False)])
async def test_a_repeated_question_does_not_pay_for_the_web_twice(sglang, searxng, web, db_url, options, cached) -> None:
    settings = fake_settings(sglang, searxng, web, db_url=db_url, **options)
    sglang.add(*research_script(web), *research_script(web))
    assert (await research_once(settings, "first"))["answer"] == "1897"
    fetched, searched = sum(web.hits.values()), searches(searxng)
    assert fetched == 2 and searched == 1
    second = await research_once(settings, "second")
    assert second["answer"] == "1897" and all(c["ok"] for c in second["tool_calls"])
    if cached:
        assert (sum(web.hits.values()), searches(searxng)) == (fetched, searched)
    else:
        assert (sum(web.hits.values()), searches(searxng)) == (2 * fetched, 2 * searched)


def test_cli_caches_no_cache_bypasses_and_cache_clear_empties(cli, sglang, searxng, web) -> None:
    env = fake_env(sglang, searxng, web)
    counts = []
    for args in ([], [], ["--no-cache"], [], None, []):
        if args is None:
            cleared = cli("cache", "clear")
            assert cleared.returncode == 0, cleared.stderr
            assert "cleared the cache: 1 search, 2 pages, 2 evidence" in cleared.stderr
            stats = cli("cache", "stats")
            assert stats.returncode == 0 and "cached: 0 search, 0 pages, 0 evidence" in stats.stdout
            continue
        sglang.add(*research_script(web))
        result = cli("research", "-q", *args, "When did the Kestrel Bridge open?", env=env)
        assert result.returncode == 0 and result.stdout == "1897\n", result.stderr
        counts.append((sum(web.hits.values()), searches(searxng)))
    # first run pays; the repeat is free; --no-cache pays; cached again; after clear it pays again
    assert counts == [(2, 1), (2, 1), (4, 2), (4, 2), (6, 3)]


def test_cli_resume_accepts_no_cache(cli) -> None:
    result = cli("resume", "--no-cache", "no-such-run")
    assert result.returncode == 2 and "no run 'no-such-run'" in result.stderr


def test_cache_settings_from_the_environment() -> None:
    settings = Settings.load(environ={"FATHOM_NO_CACHE": "1", "FATHOM_CACHE_TTL": "60", "FATHOM_CACHE_MAX_ROWS": "500"})
    assert (settings.no_cache, settings.cache_ttl_s, settings.cache_max_rows) == (True, 60.0, 500)
    assert (Settings().no_cache, Settings().cache_ttl_s) == (False, 7 * 24 * 3600.0)
