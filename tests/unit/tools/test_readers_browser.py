"""The headless browser reader: a page whose text only JavaScript writes, read through Chromium.

Skipped where Playwright (the ``browser`` extra) or Debian's Chromium is missing; ``.ci/run``
installs Chromium. Every request the browser makes is answered by the guarded fetcher, so the
page's own requests and their redirects pass the SSRF guard like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from fathom.protocols.prompts.tools import READER_NOTES
from fathom.tools.fetch import Fetcher
from fathom.tools.readers import ReaderChain
from fathom.tools.readers.browser import BrowserReader, browser_available
from tests.fakes.sites import FakeSites
from tests.fakes.web import FakeWeb
from tests.unit.tools.test_readers import no_dns

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not browser_available(CHROMIUM),
    reason=f"needs Playwright (pip install 'fathom-deepresearch[browser]') and Chromium at {CHROMIUM}",
)


@pytest.fixture
def sites() -> Iterator[FakeSites]:
    with FakeSites() as fake:
        yield fake


@pytest.fixture
def internal() -> Iterator[FakeWeb]:
    with FakeWeb() as fake:
        fake.add_page("/secret", "<html><body><p>internal secret: the admin password is hunter2</p></body></html>")
        yield fake


@pytest.fixture
async def browser_chain(sites: FakeSites) -> AsyncIterator[ReaderChain]:
    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=10, resolver=no_dns) as fetcher:
        chain = ReaderChain(fetcher, browser=BrowserReader(fetcher, path=CHROMIUM, timeout_s=20), notes=READER_NOTES)
        yield chain
        await chain.aclose()


async def test_a_javascript_page_is_read_after_its_scripts_ran(browser_chain: ReaderChain, sites: FakeSites) -> None:
    reading = await browser_chain.read(f"{sites.url}/live/js")
    assert reading.reader == "browser"
    assert reading.document.title == "Dashboard"
    assert "# Quarterly figures" in reading.document.text
    assert "Revenue rose to 4.7 million euros in the third quarter" in reading.document.text
    assert "/live/js-data.json" in sites.paths()  # the script's request, answered through the fetcher


@pytest.mark.parametrize("probe", ["internal", "redirect"])
async def test_the_pages_own_requests_pass_the_ssrf_guard(
    browser_chain: ReaderChain, sites: FakeSites, internal: FakeWeb, probe: str
) -> None:
    sites.internal = internal.url("/secret")
    sites.js_probe = internal.url("/secret") if probe == "internal" else "/live/to-internal"
    reading = await browser_chain.read(f"{sites.url}/live/js")
    assert "Revenue rose to 4.7 million euros" in reading.document.text
    assert "hunter2" not in reading.document.text
    assert internal.hits["/secret"] == 0
    if probe == "redirect":
        assert "/live/to-internal" in sites.paths()  # asked, answered with a redirect, refused there


async def test_a_cancelled_read_closes_its_page(browser_chain: ReaderChain, sites: FakeSites) -> None:
    sites.js_probe = "/live/hang"
    task = asyncio.create_task(browser_chain.read(f"{sites.url}/live/js"))
    while "/live/hang" not in sites.paths():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    reader = browser_chain.browser
    assert isinstance(reader, BrowserReader) and reader._shared is not None
    assert reader._shared.browser.contexts == []  # the page and its context are gone
