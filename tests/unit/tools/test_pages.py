"""Whole-page tools of the baseline protocols: ``read_page`` (capped page text) and ``search_pages``
(search, then read the first hits in order), against fake search and fake web on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fathom.app.services import toolbox
from fathom.settings import Settings
from fathom.tools.toolbox import INVALID_URL
from tests.fakes.search_apis import FakeSearxng
from tests.fakes.web import FakeWeb


@pytest.fixture(scope="module")
def web() -> Iterator[FakeWeb]:
    with FakeWeb() as fake:
        fake.add_page("/blank", "<html><head><title>Blank</title></head><body><div> </div></body></html>")
        yield fake


@pytest.fixture(scope="module")
def searxng(web: FakeWeb) -> Iterator[FakeSearxng]:
    results = [
        {"title": "Blank", "url": web.url("/blank"), "snippet": "Nothing."},
        {"title": "Kestrel Bridge", "url": web.url("/article"), "snippet": "A wrought-iron truss bridge."},
        {"title": "Tram", "url": web.url("/news/tram"), "snippet": "Tram news."},
        {"title": "Elsewhere", "url": "https://en.wikipedia.org/wiki/Kestrel", "snippet": "Off the allow-list."},
    ]
    with FakeSearxng(results, api_key=None) as fake:
        yield fake


@pytest.fixture
async def tools(web: FakeWeb, searxng: FakeSearxng):
    settings = Settings(allow_hosts=(web.hostport,), searxng_url=searxng.url, search_backend="searxng",
                        fetch_timeout_s=5.0, tool_timeout_s=10.0, no_cache=True)
    async with toolbox(settings) as built:
        yield built


async def test_read_page_returns_the_page_text_cut_at_the_cap(tools, web):
    whole = await tools.read_page(web.url("/article"), 100_000)
    assert whole.ok and "14 June 1897" in whole.text and "[truncated" not in whole.text
    cut = await tools.read_page(web.url("/article"), 120)
    assert cut.ok and cut.text.endswith("characters]") and "[truncated at 120 of" in cut.text
    assert len(cut.text) < 300
    assert cut.sources == [{"url": web.url("/article"), "title": whole.sources[0]["title"]}]
    assert (await tools.read_page("ftp://x/y", 100)).text == INVALID_URL


async def test_search_pages_reads_hits_in_order_and_stops_at_the_first_with_text(tools, web):
    first = await tools.search_pages("kestrel", 10, read=10, want=1, max_chars=5000)
    assert first.ok and first.data is not None
    assert [h["url"] for h in first.data["hits"]][:3] == [web.url("/blank"), web.url("/article"), web.url("/news/tram")]
    (page,) = first.data["pages"]  # the blank page has no text: the next hit is the one read
    assert page["url"] == web.url("/article") and page["snippet"] == "A wrought-iron truss bridge."
    assert "14 June 1897" in first.text[page["start"] : page["end"]]
    assert first.text[: page["start"]].endswith(f"**URL**: {web.url('/article')}\n\n")

    both = await tools.search_pages("kestrel", 10, read=3, max_chars=5000, host=web.hostport.split(":")[0])
    assert [p["url"] for p in both.data["pages"]] == [web.url("/article"), web.url("/news/tram")]
    for p in both.data["pages"]:
        assert both.text[p["start"] : p["end"]].strip()
    assert "City council approves" in both.text[both.data["pages"][1]["start"] :]

    none = await tools.search_pages("kestrel", 10, read=0)
    assert none.data["pages"] == [] and "### 1. Blank" in none.text  # the hits, as search_urls lists them
    assert (await tools.search_pages("  ", 10)).ok is False
