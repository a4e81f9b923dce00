"""Search backends against fakes of their real protocols on 127.0.0.1, the factory and the layout."""

from __future__ import annotations

import email.utils
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fathom.app.services import make_search_backend
from fathom.errors import ConfigError
from fathom.settings import Settings
from fathom.tools.base import SearchHit, ToolError
from fathom.tools.search import (
    DdgBackend,
    RetryPolicy,
    SearxngBackend,
    SerperBackend,
    TavilyBackend,
    dedupe_hits,
    format_search_results,
    normalize_url,
)
from fathom.tools.search.http import RetryableError, parse_retry_after, with_retries
from tests.fakes.search_apis import DEFAULT_RESULTS, FakeSearxng, FakeSerper, FakeTavily
from tests.fakes.server import free_port


class RecordedSleep:
    """Stands in for asyncio.sleep in RetryPolicy: records the waits, waits for none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


def policy(sleep: RecordedSleep, attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=sleep)


@pytest.fixture(scope="module")
def searxng() -> Iterator[FakeSearxng]:
    with FakeSearxng(slow_s=10) as fake:
        yield fake


@pytest.fixture(scope="module")
def serper() -> Iterator[FakeSerper]:
    with FakeSerper(api_key="serper-key", slow_s=10) as fake:
        yield fake


@pytest.fixture(scope="module")
def tavily() -> Iterator[FakeTavily]:
    with FakeTavily(api_key="tvly-key", slow_s=10) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("searxng", "serper", "tavily"):
        if name in request.fixturenames:
            fake = request.getfixturevalue(name)
            fake.reset()
            fake.set_results(DEFAULT_RESULTS)


def urls(hits: list[SearchHit]) -> list[str]:
    return [h["url"] for h in hits]


# ---- SearXNG -------------------------------------------------------------------------------------


async def test_searxng_search(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    try:
        hits = await backend.search("kestrel bridge", 2)
    finally:
        await backend.aclose()
    assert hits == [
        {"title": "Kestrel Bridge - Wikipedia", "url": "https://en.wikipedia.org/wiki/Kestrel_Bridge",
         "snippet": "The Kestrel Bridge is a wrought-iron truss bridge opened in 1897."},
        {"title": "Kestrel Bridge history", "url": "https://rivertown.example/heritage/kestrel",
         "snippet": "Construction began in 1894 under Harriet Molyneux."},
    ]
    params = searxng.requests[0]["params"]
    assert params["q"] == "kestrel bridge" and params["format"] == "json" and params["pageno"] == "1"


async def test_searxng_pages_when_top_k_asks_for_more(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.set_results([{"title": f"T{i}", "url": f"https://s{i}.example/", "snippet": "s"} for i in range(15)])
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    hits = await backend.search("q", 12)
    await backend.aclose()
    assert urls(hits) == [f"https://s{i}.example/" for i in range(12)]
    assert [r["params"]["pageno"] for r in searxng.requests] == ["1", "2"]


async def test_searxng_keeps_first_page_when_a_later_page_fails(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.set_results([{"title": f"T{i}", "url": f"https://s{i}.example/", "snippet": "s"} for i in range(15)])
    searxng.fail_next("server_error", after=1)  # page 1 answers, page 2 fails
    backend = SearxngBackend(searxng.url, retry=policy(sleep, attempts=1))
    hits = await backend.search("q", 12)
    await backend.aclose()
    assert urls(hits) == [f"https://s{i}.example/" for i in range(10)]
    assert [r["params"]["pageno"] for r in searxng.requests] == ["1", "2"]


async def test_searxng_dedupes_by_normalised_url(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.set_results([
        {"title": "A", "url": "https://www.a.example/page/?utm_source=x", "snippet": "1"},
        {"title": "A again", "url": "http://a.example/page#top", "snippet": "2"},
        {"title": "B", "url": "https://b.example/", "snippet": "3"},
        {"title": "no url", "url": "", "snippet": "4"},
    ])
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    hits = await backend.search("q", 10)
    await backend.aclose()
    assert [h["title"] for h in hits] == ["A", "B"]


async def test_searxng_429_with_retry_after_then_success(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.fail_next("rate_limit", retry_after=7)
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    hits = await backend.search("q", 3)
    await backend.aclose()
    assert len(hits) == 3
    assert sleep.waits == [7.0]  # the server's Retry-After, not our backoff
    assert len(searxng.requests) == 2


async def test_searxng_500_is_retried_with_backoff(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.fail_next("server_error", times=2)
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    assert len(await backend.search("q", 3)) == 3
    assert len(sleep.waits) == 2 and sleep.waits[1] > sleep.waits[0] > 0
    searxng.fail_next("server_error", times=3)
    with pytest.raises(ToolError, match=r"SearXNG server error \(HTTP 500.*\(gave up after 3 attempts\)"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_retry_after_longer_than_the_cap_fails_at_once(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.fail_next("rate_limit", retry_after=3600)
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"rate limit or quota exceeded \(HTTP 429.*asks to wait 3600 s"):
        await backend.search("q", 3)
    await backend.aclose()
    assert sleep.waits == [] and len(searxng.requests) == 1


async def test_searxng_timeout(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.fail_next("slow", times=2)
    backend = SearxngBackend(searxng.url, timeout_s=0.3, retry=policy(sleep, attempts=2))
    with pytest.raises(ToolError, match=r"SearXNG did not answer in time \(gave up after 2 attempts\)"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_searxng_malformed_json_is_not_retried(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.fail_next("malformed")
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"SearXNG returned malformed JSON \(HTTP 200, application/json\)"):
        await backend.search("q", 3)
    await backend.aclose()
    assert len(searxng.requests) == 1


async def test_searxng_403_without_json_format(searxng: FakeSearxng, sleep: RecordedSleep) -> None:
    searxng.fail_next("forbidden")
    backend = SearxngBackend(searxng.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"SearXNG refused the request \(HTTP 403"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_unreachable_service(sleep: RecordedSleep) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    backend = SearxngBackend(url, retry=policy(sleep, attempts=2))
    with pytest.raises(ToolError, match=r"could not reach SearXNG at .*\(gave up after 2 attempts\)"):
        await backend.search("q", 3)
    await backend.aclose()


# ---- Serper --------------------------------------------------------------------------------------


async def test_serper_sends_key_num_gl_hl(serper: FakeSerper, sleep: RecordedSleep) -> None:
    backend = SerperBackend("serper-key", base_url=serper.url, retry=policy(sleep))
    hits = await backend.search("kestrel bridge", 2)
    assert urls(hits) == [r["url"] for r in DEFAULT_RESULTS[:2]]
    request = serper.requests[0]
    assert request["method"] == "POST" and request["path"] == "/search"
    assert request["headers"]["x-api-key"] == "serper-key"
    assert request["json"] == {"q": "kestrel bridge", "num": 10, "gl": "us", "hl": "en"}
    await backend.search("q", 20)
    assert serper.requests[1]["json"]["num"] == 20  # top_k > 10 reaches the API (T11)
    await backend.aclose()


async def test_serper_bad_key(serper: FakeSerper, sleep: RecordedSleep) -> None:
    backend = SerperBackend("wrong", base_url=serper.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"^Serper rejected the API key \(HTTP 403: Unauthorized\.\); check SERPER_API_KEY$"):
        await backend.search("q", 3)
    await backend.aclose()
    assert len(serper.requests) == 1  # not retried


async def test_serper_401(serper: FakeSerper, sleep: RecordedSleep) -> None:
    serper.fail_next("unauthorized")
    backend = SerperBackend("serper-key", base_url=serper.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"HTTP 401.*check SERPER_API_KEY"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_serper_429_then_success(serper: FakeSerper, sleep: RecordedSleep) -> None:
    serper.fail_next("rate_limit", retry_after=2)
    backend = SerperBackend("serper-key", base_url=serper.url, retry=policy(sleep))
    assert len(await backend.search("q", 3)) == 3
    await backend.aclose()
    assert sleep.waits == [2.0]


async def test_serper_500_and_malformed(serper: FakeSerper, sleep: RecordedSleep) -> None:
    backend = SerperBackend("serper-key", base_url=serper.url, retry=policy(sleep))
    serper.fail_next("server_error")
    assert len(await backend.search("q", 3)) == 3
    serper.fail_next("malformed")
    with pytest.raises(ToolError, match="Serper returned malformed JSON"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_serper_timeout(serper: FakeSerper, sleep: RecordedSleep) -> None:
    serper.fail_next("slow")
    backend = SerperBackend("serper-key", base_url=serper.url, timeout_s=0.3, retry=policy(sleep, attempts=1))
    with pytest.raises(ToolError, match=r"^Serper did not answer in time$"):
        await backend.search("q", 3)
    await backend.aclose()


def test_serper_needs_a_key() -> None:
    with pytest.raises(ToolError, match="SERPER_API_KEY"):
        SerperBackend("")


# ---- Tavily --------------------------------------------------------------------------------------


async def test_tavily_search(tavily: FakeTavily, sleep: RecordedSleep) -> None:
    backend = TavilyBackend("tvly-key", base_url=tavily.url, retry=policy(sleep))
    hits = await backend.search("kestrel bridge", 2)
    await backend.aclose()
    assert hits[0] == {"title": "Kestrel Bridge - Wikipedia", "url": "https://en.wikipedia.org/wiki/Kestrel_Bridge",
                       "snippet": "The Kestrel Bridge is a wrought-iron truss bridge opened in 1897."}
    assert len(hits) == 2
    request = tavily.requests[0]
    assert request["headers"]["authorization"] == "Bearer tvly-key"
    assert request["json"]["query"] == "kestrel bridge" and request["json"]["max_results"] == 2


async def test_tavily_bad_key(tavily: FakeTavily, sleep: RecordedSleep) -> None:
    backend = TavilyBackend("wrong", base_url=tavily.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"^Tavily rejected the API key \(HTTP 401: Unauthorized: missing or invalid API key\.\); check TAVILY_API_KEY$"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_tavily_429_with_retry_after_then_success(tavily: FakeTavily, sleep: RecordedSleep) -> None:
    tavily.fail_next("rate_limit", retry_after=3)
    backend = TavilyBackend("tvly-key", base_url=tavily.url, retry=policy(sleep))
    assert len(await backend.search("q", 3)) == 3
    await backend.aclose()
    assert sleep.waits == [3.0]  # read from the response, although tavily-python drops it


async def test_tavily_429_exhausted(tavily: FakeTavily, sleep: RecordedSleep) -> None:
    tavily.fail_next("rate_limit", times=3)
    backend = TavilyBackend("tvly-key", base_url=tavily.url, retry=policy(sleep))
    with pytest.raises(ToolError, match=r"Tavily rate limit or quota exceeded \(HTTP 429: .*excessive requests\.\)"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_tavily_500_then_success_and_forbidden(tavily: FakeTavily, sleep: RecordedSleep) -> None:
    backend = TavilyBackend("tvly-key", base_url=tavily.url, retry=policy(sleep))
    tavily.fail_next("server_error", retry_after=1)
    assert len(await backend.search("q", 3)) == 3
    assert sleep.waits == [1.0]
    tavily.fail_next("forbidden")
    with pytest.raises(ToolError, match=r"Tavily refused the request: plan limit"):
        await backend.search("q", 3)
    await backend.aclose()


async def test_tavily_timeout_and_malformed(tavily: FakeTavily, sleep: RecordedSleep) -> None:
    backend = TavilyBackend("tvly-key", base_url=tavily.url, timeout_s=0.3, retry=policy(sleep, attempts=1))
    tavily.fail_next("slow")
    with pytest.raises(ToolError, match="^Tavily did not answer in time$"):
        await backend.search("q", 3)
    tavily.fail_next("malformed")
    with pytest.raises(ToolError, match="Tavily returned malformed JSON"):
        await backend.search("q", 3)
    await backend.aclose()


def test_tavily_needs_a_key() -> None:
    with pytest.raises(ToolError, match="TAVILY_API_KEY"):
        TavilyBackend("")


# ---- DuckDuckGo (ddgs is optional; the fake stands in at the library boundary) ---------------------


class RatelimitException(Exception):
    pass


class DDGSException(Exception):
    pass


class FakeDDGS:
    script: list[Any] = []
    calls: list[dict[str, Any]] = []

    def __init__(self, timeout: int = 5) -> None:
        self.timeout = timeout

    def __enter__(self) -> FakeDDGS:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def text(self, query: str, **kwargs: Any) -> list[dict[str, str]]:
        FakeDDGS.calls.append({"query": query, **kwargs})
        step = FakeDDGS.script.pop(0) if FakeDDGS.script else None
        if isinstance(step, Exception):
            raise step
        return [{"title": r["title"], "href": r["url"], "body": r["snippet"]} for r in DEFAULT_RESULTS]


async def test_ddg_search_with_rate_limit_retry(sleep: RecordedSleep) -> None:
    FakeDDGS.script = [RatelimitException("202 Ratelimit")]
    FakeDDGS.calls = []
    backend = DdgBackend(ddgs_factory=FakeDDGS, retry=policy(sleep, attempts=2))
    hits = await backend.search("kestrel", 2)
    assert urls(hits) == [r["url"] for r in DEFAULT_RESULTS[:2]]
    assert FakeDDGS.calls[-1] == {"query": "kestrel", "region": "us-en", "max_results": 2}
    assert len(sleep.waits) == 1
    FakeDDGS.script = [DDGSException("No results found.")]
    assert await backend.search("zzzz", 2) == []
    FakeDDGS.script = [ValueError("boom")]
    with pytest.raises(ToolError, match=r"DuckDuckGo search failed \(ValueError: boom\)"):
        await backend.search("q", 2)


def test_ddg_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ddgs", None)  # makes `import ddgs` fail, installed or not
    with pytest.raises(ToolError, match=r"pip install ddgs"):
        DdgBackend()


# ---- factory ----------------------------------------------------------------------------------------


async def test_factory_builds_the_configured_backend(searxng: FakeSearxng) -> None:
    built = [
        make_search_backend(Settings(searxng_url=searxng.url)),
        make_search_backend(Settings(serper_api_key="k")),
        make_search_backend(Settings(tavily_api_key="k", serper_api_key="k2", tavily_url="http://127.0.0.1:1")),
    ]
    try:
        # Each behind the process's per-backend limiter (see test_tools_limits.py).
        assert [type(b.backend) for b in built] == [SearxngBackend, SerperBackend, TavilyBackend]  # type: ignore[attr-defined]
        assert built[2].base_url == "http://127.0.0.1:1"  # type: ignore[attr-defined]
        assert [b.name for b in built] == ["searxng", "serper", "tavily"]
    finally:
        for backend in built:
            await backend.aclose()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"search_backend": "tavily"}, "set TAVILY_API_KEY"),
        ({"search_backend": "serper"}, "set SERPER_API_KEY"),
        ({"search_backend": "searxng"}, "set SEARXNG_URL"),
    ],
)
def test_factory_fails_clearly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_search_backend(Settings(**settings))


def test_factory_ddg_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ddgs", None)
    with pytest.raises(ConfigError, match=r"pip install ddgs"):
        make_search_backend(Settings())


# ---- layout and helpers -------------------------------------------------------------------------------


def test_format_search_results_exact_layout() -> None:
    hits = [SearchHit(title="A", url="https://a.example/", snippet="first"),
            SearchHit(title="B", url="https://b.example/", snippet="second")]
    assert format_search_results(hits, "q") == (
        "### 1. A\n**URL**: https://a.example/\n\n**Snippet**: first\n"
        "\n---\n\n"
        "### 2. B\n**URL**: https://b.example/\n\n**Snippet**: second\n"
    )


def test_format_zero_hits() -> None:
    assert format_search_results([], "kestrel bridge") == 'No results found for "kestrel bridge".'


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://www.example.com/a/", "http://example.com/a"),
        ("https://example.com/a?utm_source=x&id=3", "https://example.com/a?id=3"),
        ("https://EXAMPLE.com:443/a#frag", "https://example.com/a"),
        ("https://example.com/a?gclid=1", "https://example.com/a"),
    ],
)
def test_normalize_url_equal(a: str, b: str) -> None:
    assert normalize_url(a) == normalize_url(b)


def test_normalize_url_keeps_meaningful_differences() -> None:
    assert normalize_url("https://example.com/a?id=3") != normalize_url("https://example.com/a?id=4")
    assert normalize_url("https://example.com:8080/a") != normalize_url("https://example.com/a")
    assert normalize_url("https://example.com/A") != normalize_url("https://example.com/a")


def test_dedupe_hits_keeps_first_and_limits() -> None:
    hits = [SearchHit(title=str(i), url=f"https://e.example/{i % 3}", snippet="") for i in range(9)]
    assert [h["title"] for h in dedupe_hits(hits)] == ["0", "1", "2"]
    assert [h["title"] for h in dedupe_hits(hits, 2)] == ["0", "1"]


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(future) or 0) <= 31


async def test_with_retries_counts_attempts(sleep: RecordedSleep) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("flaky")
        return "ok"

    assert await with_retries(flaky, policy(sleep)) == "ok"
    assert calls == 3 and len(sleep.waits) == 2
