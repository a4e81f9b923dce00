"""Reading ahead (fathom.tools.prefetch) through a real Toolbox: fake web pages on 127.0.0.1, the
real SSRF guard, the real reader chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fathom.app.services import toolbox
from fathom.settings import Settings
from fathom.tools.prefetch import Prefetcher
from fathom.tools.ssrf import BlockedURLError
from fathom.tools.toolbox import Toolbox
from tests.fakes.web import FakeWeb

GOAL = "When was the Kestrel Bridge opened?"
METADATA = "http://169.254.169.254/latest/meta-data/"  # link-local: refused without a connection


@pytest.fixture(scope="module")
def internal() -> Iterator[FakeWeb]:
    """A loopback service the allow-list does not name: the guard must keep every read off it."""
    with FakeWeb() as fake:
        fake.add_page("/secret", "<p>internal secret</p>")
        yield fake


def tools_for(web: FakeWeb, **overrides: Any) -> Toolbox:
    values: dict[str, Any] = {"allow_hosts": (web.hostport,), "fetch_timeout_s": 5.0, "tool_timeout_s": 10.0,
                              "no_cache": True, "prefetch_pages": 3}
    return toolbox(Settings(**(values | overrides)))


@pytest.fixture
async def tools(web: FakeWeb) -> AsyncIterator[Toolbox]:
    async with tools_for(web) as built:
        yield built


def ahead(tools: Toolbox) -> Prefetcher:
    assert tools.prefetcher is not None
    return tools.prefetcher


async def test_a_page_read_ahead_is_not_fetched_again(tools: Toolbox, web: FakeWeb) -> None:
    url = web.url("/article")
    assert ahead(tools).start("run", [url, web.url("/news/tram")]) == [url, web.url("/news/tram")]
    outcome = await tools.query_url(url, GOAL)
    assert outcome.ok and "14 June 1897" in outcome.text
    assert web.hits["/article"] == 1 and ahead(tools).counts["used"] == 1
    # The same page for another goal: still the page read ahead, still one request.
    assert (await tools.query_url(url, "Who designed it?")).ok
    assert web.hits["/article"] == 1 and ahead(tools).counts["used"] == 2


async def test_only_the_top_results_are_read_ahead(web: FakeWeb) -> None:
    async with tools_for(web, prefetch_pages=2) as tools:
        urls = [web.url(p) for p in ("/article", "/news/tram", "/wiki/Lake_Vostrand", "/r1")]
        assert ahead(tools).start("run", urls) == urls[:2]
        assert (await tools.query_url(urls[2], GOAL)).ok  # not read ahead: read now
        assert web.hits["/wiki/Lake_Vostrand"] == 1 and web.hits["/r1"] == 0
        assert ahead(tools).counts["started"] == 2


async def test_the_guard_decides_before_any_read_ahead(tools: Toolbox, web: FakeWeb, internal: FakeWeb) -> None:
    web.add_redirect("/go-internal", internal.url("/secret"))
    internal.reset()
    secret = internal.url("/secret")
    urls = [secret, METADATA, web.url("/go-internal")]
    for refused in (secret, METADATA):
        with pytest.raises(BlockedURLError):
            await tools.reader.vet(refused)
    ahead(tools).start("run", urls)
    assert [await ahead(tools).take(url) for url in urls] == [None, None, None]
    # The redirect was followed only as far as the guard allows: nothing reached the internal service.
    assert web.hits["/go-internal"] == 1 and sum(internal.hits.values()) == 0
    assert ahead(tools).counts["read"] == 0 and ahead(tools).held_bytes == 0
    outcome = await tools.query_url(secret, GOAL)
    assert not outcome.ok and sum(internal.hits.values()) == 0


async def test_a_page_over_the_byte_bound_is_read_when_asked(web: FakeWeb) -> None:
    async with tools_for(web, prefetch_max_bytes=200) as tools:
        url = web.url("/article")
        ahead(tools).start("run", [url])
        assert await ahead(tools).take(url) is None
        assert ahead(tools).counts["over_bytes"] == 1 and ahead(tools).held_bytes == 0
        assert (await tools.query_url(url, GOAL)).ok
        assert web.hits["/article"] == 2


async def test_new_results_and_settled_turns_cancel_what_no_turn_reads(tools: Toolbox, web: FakeWeb) -> None:
    prefetch = ahead(tools)
    prefetch.start("run", [web.url("/slow")])
    prefetch.start("other run", [web.url("/news/tram")])
    assert prefetch.pending == 2
    # The run's next results replace its earlier ones; another run's reads go on.
    prefetch.start("run", [web.url("/article")])
    assert prefetch.counts["cancelled"] == 1
    assert await prefetch.take(web.url("/slow")) is None
    assert await prefetch.take(web.url("/news/tram")) is not None
    # A turn that reads /article keeps it; a turn that answers drops everything of its run.
    prefetch.settle("run", keep=[web.url("/article")])
    assert (await tools.query_url(web.url("/article"), GOAL)).ok and web.hits["/article"] == 1
    prefetch.start("run", [web.url("/slow")])
    prefetch.settle("run")
    assert await prefetch.take(web.url("/article")) is None
    await prefetch.finish("run")  # the run ended: its cancelled reads have stopped
    assert prefetch.pending == 0 and prefetch.counts["cancelled"] == 2
    await prefetch.finish("other run")
    assert prefetch.held_bytes == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("read ahead")]


async def test_closing_the_toolbox_stops_every_read_ahead(web: FakeWeb) -> None:
    tools = tools_for(web)
    ahead(tools).start("run", [web.url("/slow"), web.url("/drip")])
    assert ahead(tools).pending == 2
    await tools.aclose()
    assert ahead(tools).pending == 0
