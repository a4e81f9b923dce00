"""The page readers against loopback fakes that speak each site's real format (tests/fakes/sites.py).

Readers are picked by the URL's host (github.com, reddit.com…), and their requests go to the base
URLs the settings inject: the fakes. The fetcher resolves no host name at all, so a request to a
real site (a wrong base URL, a fallback to the page itself) fails here instead of leaving the
machine; only 127.0.0.1 literals are reachable, and only the fake's port is allow-listed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fathom.app.services import reader_chain
from fathom.protocols.prompts.tools import READER_NOTES
from fathom.settings import Settings
from fathom.tools.fetch import Fetcher
from fathom.tools.readers import ReaderChain, ReadFailure
from fathom.tools.ssrf import UnresolvableHostError
from tests.fakes.sites import ARXIV_ID, FakeSites
from tests.fakes.web import FakeWeb


async def no_dns(host: str, port: int) -> list[str]:
    raise UnresolvableHostError(f"could not resolve host {host!r} (no DNS in tests)")


def site_settings(sites: FakeSites, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "github_api_url": sites.base("github-api"), "github_raw_url": sites.base("github-raw"),
        "reddit_url": sites.base("reddit"), "youtube_url": sites.base("youtube"),
        "arxiv_url": sites.base("arxiv"), "wikipedia_url": sites.base("wikipedia"),
        "archive_url": sites.base("archive"), "jina_url": sites.base("jina"),
        "reader": "static", "fetch_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def sites_server() -> Iterator[FakeSites]:
    with FakeSites() as fake:
        yield fake


@pytest.fixture
def sites(sites_server: FakeSites) -> Iterator[FakeSites]:
    sites_server.requests.clear()
    yield sites_server
    sites_server.hijack, sites_server.hijack_prefix, sites_server.internal = None, "/", None
    sites_server.js_probe = None
    sites_server.busy_hits = 0


@pytest.fixture(scope="module")
def internal() -> Iterator[FakeWeb]:
    """A service on another loopback port that no reader may reach: it is not allow-listed."""
    with FakeWeb() as fake:
        fake.add_page("/secret", "<html><body><p>internal secret: the admin password is hunter2</p></body></html>")
        yield fake


@pytest.fixture
async def chain(sites: FakeSites) -> AsyncIterator[ReaderChain]:
    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        built = reader_chain(site_settings(sites), fetcher)
        yield built
        await built.aclose()


# ---- GitHub --------------------------------------------------------------------------------


async def test_a_repository_reads_as_its_readme(chain: ReaderChain) -> None:
    reading = await chain.read("https://github.com/acme/widgets")
    doc = reading.document
    assert reading.reader == "github"
    assert doc.url == "https://github.com/acme/widgets" and doc.title == "acme/widgets: Sprocket alignment toolkit"
    assert "Widgets is a toolkit for **sprocket alignment**." in doc.text
    assert "Version 4.2 added the torque calibrator." in doc.text


async def test_a_branch_reads_as_its_own_readme(chain: ReaderChain, sites: FakeSites) -> None:
    doc = (await chain.read("https://github.com/acme/widgets/tree/v4.2")).document
    assert "Version 4.2 added the torque calibrator." in doc.text
    assert "/github-api/repos/acme/widgets/readme?ref=v4.2" in sites.paths()


async def test_a_blob_url_reads_the_raw_file(chain: ReaderChain, sites: FakeSites) -> None:
    doc = (await chain.read("https://github.com/acme/widgets/blob/main/src/calibrate.py")).document
    assert "clamps torque at 88 newton-metres" in doc.text
    assert "/github-raw/acme/widgets/main/src/calibrate.py" in sites.paths()


async def test_an_issue_reads_with_its_comments(chain: ReaderChain) -> None:
    doc = (await chain.read("https://github.com/acme/widgets/issues/17")).document
    assert doc.title == "acme/widgets Issue #17: Calibrator overshoots on cold start"
    assert "reports 91 Nm, above the 88 Nm clamp" in doc.text
    assert "@devon" in doc.text and "Fixed in 4.2.1 by clamping after warm-up." in doc.text


async def test_the_github_token_goes_to_the_api_only(sites: FakeSites) -> None:
    settings = site_settings(sites, github_token="ghp_test_token_123")
    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        chain = reader_chain(settings, fetcher)
        await chain.read("https://github.com/acme/widgets")
        await chain.read("https://github.com/acme/widgets/blob/main/src/calibrate.py")
    api = sites.headers_of("/github-api/")
    assert api and all(h.get("authorization") == "Bearer ghp_test_token_123" for h in api)
    raw = sites.headers_of("/github-raw/")
    assert raw and not any("authorization" in h for h in raw)


async def test_a_redirect_to_another_host_drops_the_token(sites: FakeSites, internal: FakeWeb) -> None:
    """Even to a host the allow-list opens: a key goes to its own origin only."""
    internal.add_page("/moved/readme", '{"encoding": "base64", "content": "IyBNb3ZlZA=="}', "application/json")
    sites.hijack, sites.hijack_prefix = internal.url("/moved/readme"), "/github-api"
    settings = site_settings(sites, github_token="ghp_test_token_123")
    async with Fetcher(allow_hosts=[sites.hostport, internal.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        reading = await reader_chain(settings, fetcher).read("https://github.com/acme/widgets")
    assert "# Moved" in reading.document.text  # the API's answer came from where it redirected
    assert sites.headers_of("/github-api/")[0]["authorization"] == "Bearer ghp_test_token_123"
    moved = [r["headers"] for r in internal.requests if r["path"] == "/moved/readme"]
    assert moved and not any("authorization" in h for h in moved)


async def test_a_failed_site_reader_is_named_and_the_page_itself_tried(chain: ReaderChain) -> None:
    with pytest.raises(ReadFailure) as failure:
        await chain.read("https://github.com/acme/no-such-repo")
    # The page itself comes first (here: no DNS in tests), then each reader that failed before it.
    assert str(failure.value) == ("could not resolve host 'github.com' (no DNS in tests); "
                                  "github: HTTP 404 Not Found")


async def test_github_pages_that_are_not_repositories_are_read_as_pages(chain: ReaderChain, sites: FakeSites) -> None:
    with pytest.raises(ReadFailure, match=r"^could not resolve host 'github.com'") as failure:
        await chain.read("https://github.com/orgs/acme/people")
    assert "github:" not in str(failure.value)  # not a page the GitHub reader knows


# ---- Reddit ----------------------------------------------------------------------------------


async def test_a_reddit_post_reads_with_its_top_comments_first(chain: ReaderChain, sites: FakeSites) -> None:
    doc = (await chain.read("https://www.reddit.com/r/cooking/comments/abc123/best_way/")).document
    assert doc.title == "Best way to season a carbon steel pan?"
    assert "posted by u/panfan" in doc.text and "How many layers of oil?" in doc.text
    assert doc.text.index("u/lurker (score 900)") < doc.text.index("u/chef_kay (score 50)")
    assert any(p.startswith("/reddit/r/cooking/comments/abc123/best_way.json?") and "raw_json=1" in p
               for p in sites.paths())


async def test_a_subreddit_reads_as_its_posts(chain: ReaderChain) -> None:
    doc = (await chain.read("https://old.reddit.com/r/cooking/")).document
    assert doc.title == "r/cooking" and "Best way to season a carbon steel pan?" in doc.text


# ---- YouTube ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=10s", "https://youtu.be/dQw4w9WgXcQ"])
async def test_a_video_reads_as_its_english_transcript(chain: ReaderChain, url: str) -> None:
    doc = (await chain.read(url)).document
    assert doc.title == "Sharpening a chisel"
    assert "Welcome back to the workshop. Today we sharpen a chisel to 25 degrees & hone it." in doc.text
    assert "Willkommen" not in doc.text  # the German track is not the one asked for


async def test_a_video_without_captions_reads_as_title_and_description(chain: ReaderChain) -> None:
    doc = (await chain.read("https://www.youtube.com/watch?v=noCaptions1")).document
    assert READER_NOTES.no_transcript in doc.text
    assert "How we sharpen chisels: the angle, the stones, the strop." in doc.text


# ---- arXiv and Wikipedia ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"abs/{ARXIV_ID}", f"pdf/{ARXIV_ID}"])
async def test_an_arxiv_paper_reads_with_title_authors_and_full_text(chain: ReaderChain, path: str) -> None:
    doc = (await chain.read(f"https://arxiv.org/{path}")).document
    assert doc.title == "Sparse Kestrels: Attention for Birds"
    assert "authors: Molyneux, Harriet, O'Brien, Tomas" in doc.text
    assert "93.4 percent accuracy on the hover benchmark" in doc.text  # from the PDF


async def test_a_wikipedia_article_reads_as_plain_text_with_headings(chain: ReaderChain) -> None:
    doc = (await chain.read("https://en.wikipedia.org/wiki/Lake_Vostrand")).document
    assert doc.title == "Lake Vostrand"
    assert "## History\nThe first sounding, in 1911 by Elin Strand, measured a depth of 221 metres." in doc.text


async def test_a_missing_wikipedia_article_says_so(chain: ReaderChain) -> None:
    with pytest.raises(ReadFailure, match="wikipedia: Wikipedia has no article of that title"):
        await chain.read("https://en.wikipedia.org/wiki/No_Such_Lake")


# ---- blocked pages: the Internet Archive ------------------------------------------------------


async def test_a_page_that_refuses_us_is_read_from_its_labelled_snapshot(chain: ReaderChain, sites: FakeSites) -> None:
    url = f"{sites.url}/live/blocked"
    reading = await chain.read(url)
    assert reading.reader == "archive.org"
    text = reading.document.text
    assert text.startswith(READER_NOTES.archived(url, "2024-01-15 09:30 UTC", "HTTP 403 Forbidden"))
    assert "second Tuesday of May" in text
    assert "Wayback Machine toolbar" not in text  # the id_ snapshot: the page as archived
    assert any(p.startswith("/archive/web/20240115093000id_/") for p in sites.paths())


async def test_a_refusing_page_without_snapshot_says_both_reasons(chain: ReaderChain, sites: FakeSites) -> None:
    with pytest.raises(ReadFailure) as failure:
        await chain.read(f"{sites.url}/live/private")
    assert str(failure.value) == f"HTTP 401 Unauthorized; archive.org: {READER_NOTES.no_snapshot}"


async def test_a_throttled_page_is_asked_again_after_the_wait_it_names(chain: ReaderChain, sites: FakeSites) -> None:
    reading = await chain.read(f"{sites.url}/live/busy")
    assert "second Tuesday of May" in reading.document.text and reading.reader == "html"
    assert sites.paths().count("/live/busy") == 2


async def test_a_page_asking_for_a_long_wait_goes_to_the_archive_at_once(chain: ReaderChain, sites: FakeSites) -> None:
    with pytest.raises(ReadFailure) as failure:
        await chain.read(f"{sites.url}/live/throttled")
    assert str(failure.value) == f"HTTP 429 Too Many Requests; archive.org: {READER_NOTES.no_snapshot}"
    assert sites.paths().count("/live/throttled") == 1


async def test_a_reader_past_its_time_cap_is_named_and_the_next_tried(sites: FakeSites) -> None:
    from fathom.tools.readers.github import GitHubReader

    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        slow = GitHubReader(fetcher, api_url=f"{sites.url}/live/hang", raw_url=sites.base("github-raw"), timeout_s=0.3)
        with pytest.raises(ReadFailure) as failure:
            await ReaderChain(fetcher, sites=[slow]).read("https://github.com/acme/widgets")
    assert str(failure.value) == ("could not resolve host 'github.com' (no DNS in tests); "
                                  "github: timed out after 0.3 s")


# ---- Jina ------------------------------------------------------------------------------------


async def test_the_jina_reader_reads_pages_and_gets_its_key_alone(sites: FakeSites) -> None:
    settings = site_settings(sites, reader="jina", jina_api_key="jina_key_456", github_token="ghp_x")
    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        reading = await reader_chain(settings, fetcher).read("https://news.example.org/ferry")
    assert reading.reader == "jina" and reading.document.title == "Rendered by the reader"
    assert "the ferry leaves at 07:40 from pier 3" in reading.document.text
    jina = sites.headers_of("/jina/https://news.example.org/ferry")
    assert jina and jina[-1]["authorization"] == "Bearer jina_key_456"


# ---- every reader passes the SSRF guard -------------------------------------------------------


@pytest.mark.parametrize(
    "url, prefix",
    [
        ("https://github.com/acme/widgets", "/github-api"),
        ("https://github.com/acme/widgets/blob/main/src/calibrate.py", "/github-raw"),
        ("https://github.com/acme/widgets/issues/17", "/github-api"),
        ("https://www.reddit.com/r/cooking/comments/abc123/best_way/", "/reddit"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "/youtube"),
        (f"https://arxiv.org/abs/{ARXIV_ID}", "/arxiv"),
        ("https://en.wikipedia.org/wiki/Lake_Vostrand", "/wikipedia"),
        ("LIVE/live/blocked", "/archive"),
    ],
)
async def test_a_redirect_to_an_internal_service_is_refused(
    chain: ReaderChain, sites: FakeSites, internal: FakeWeb, url: str, prefix: str
) -> None:
    sites.hijack, sites.hijack_prefix = internal.url("/secret"), prefix
    with pytest.raises(ReadFailure) as failure:
        await chain.read(url.replace("LIVE", sites.url))
    assert "refused: 127.0.0.1 is a loopback address" in str(failure.value)
    assert internal.hits["/secret"] == 0


async def test_the_jina_reader_passes_the_ssrf_guard(sites: FakeSites, internal: FakeWeb) -> None:
    sites.hijack, sites.hijack_prefix = internal.url("/secret"), "/jina"
    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        with pytest.raises(ReadFailure, match="jina: refused: 127.0.0.1 is a loopback address"):
            await reader_chain(site_settings(sites, reader="jina"), fetcher).read("https://news.example.org/ferry")
    assert internal.hits["/secret"] == 0


# ---- JavaScript pages ------------------------------------------------------------------------


async def test_a_page_that_needs_javascript_says_the_browser_is_missing(sites: FakeSites) -> None:
    async with Fetcher(allow_hosts=[sites.hostport], timeout_s=5, resolver=no_dns) as fetcher:
        chain = ReaderChain(fetcher, notes=READER_NOTES, browser_missing=True)
        with pytest.raises(ReadFailure) as failure:
            await chain.read(f"{sites.url}/live/blank")
    assert str(failure.value) == f"the page has no readable text; browser: {READER_NOTES.browser_missing}"


# ---- the cache: no page served past the guard ---------------------------------------------------


async def test_a_cached_page_is_not_served_once_its_host_is_no_longer_allowed(sites: FakeSites, tmp_path) -> None:
    from fathom.app.services import toolbox
    from fathom.store.cache import ToolCache

    url, goal = f"{sites.url}/live/js-data.json", "What was the revenue?"
    allowed = site_settings(sites, allow_hosts=[sites.hostport], searxng_url="http://127.0.0.1:9")
    async with ToolCache.open(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}") as cache:
        async with toolbox(allowed, cache=cache, resolver=no_dns) as tools:
            assert (await tools.query_url(url, goal)).ok
            github = await tools.query_url("https://github.com/acme/widgets", "What is it for?")
            assert github.ok
        async with toolbox(allowed.model_copy(update={"allow_hosts": ()}), cache=cache, resolver=no_dns) as tools:
            refused = await tools.query_url(url, goal)
            assert refused.text == f"[error] could not fetch {url}: refused: 127.0.0.1 is a loopback address"
            # A site reader's page names no internal host: its API requests are vetted when made.
            assert (await tools.query_url("https://github.com/acme/widgets", "What is it for?")) == github
