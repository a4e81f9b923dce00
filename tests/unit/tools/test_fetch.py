"""Page fetching against the fake web: redirects, limits, content types, charsets and the SSRF guard
at every hop and at connect time. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Iterator

import httpcore
import httpx
import pytest

from fathom.tools.extract import ExtractError, extract
from fathom.tools.fetch import USER_AGENT, Fetcher, FetchError, decode_body
from fathom.tools.media import MediaKind
from fathom.tools.ssrf import (
    BlockedURLError,
    GuardedNetworkBackend,
    GuardedTransport,
    SSRFGuard,
)
from tests.fakes.web import FakeWeb


@pytest.fixture(scope="module")
def web() -> Iterator[FakeWeb]:
    with FakeWeb(slow_s=30, huge_bytes=200_000) as fake:
        yield fake


@pytest.fixture(scope="module")
def internal() -> Iterator[FakeWeb]:
    """The "internal service": a second loopback port that is never allow-listed."""
    with FakeWeb() as fake:
        fake.add_page("/secret", "<html><body><p>internal secret</p></body></html>")
        yield fake


@pytest.fixture
async def fetcher(web: FakeWeb):
    async with Fetcher(allow_hosts=[web.hostport], timeout_s=5, max_bytes=50_000) as f:
        yield f


def port_of(fake: FakeWeb) -> int:
    return int(fake.hostport.rsplit(":", 1)[1])


async def test_fetch_html_page(fetcher: Fetcher, web: FakeWeb) -> None:
    page = await fetcher.fetch(web.url("/article"))
    assert page.status == 200 and page.kind is MediaKind.HTML and not page.truncated
    assert page.final_url == web.url("/article")
    assert "Kestrel Bridge" in page.text()


async def test_own_browser_like_user_agent(fetcher: Fetcher, web: FakeWeb) -> None:
    web.add_page("/ua", "<p>ua</p>")
    await fetcher.fetch(web.url("/ua"))
    sent = [r for r in web.requests if r["path"] == "/ua"][-1]["headers"]
    assert sent["user-agent"] == USER_AGENT
    assert "Mozilla/5.0" in USER_AGENT and "FathomResearch" in USER_AGENT


async def test_redirect_chain_is_followed(fetcher: Fetcher, web: FakeWeb) -> None:
    before = web.hits.copy()
    page = await fetcher.fetch(web.url("/r1"))
    assert page.url == web.url("/r1")
    assert page.final_url == web.url("/final")
    assert "final page" in page.text()
    for path in ("/r1", "/r2", "/final"):
        assert web.hits[path] - before[path] == 1


async def test_more_than_five_redirects_is_an_error(fetcher: Fetcher, web: FakeWeb) -> None:
    before = web.hits.copy()
    with pytest.raises(FetchError, match=r"too many redirects \(more than 5\)"):
        await fetcher.fetch(web.url("/loop/1"))
    assert web.hits["/loop/6"] - before["/loop/6"] == 1  # the original request plus five redirects
    assert web.hits["/loop/7"] - before["/loop/7"] == 0  # the sixth redirect is not followed


async def test_404_is_an_error(fetcher: Fetcher, web: FakeWeb) -> None:
    with pytest.raises(FetchError, match="^HTTP 404 Not Found$"):
        await fetcher.fetch(web.url("/no/such/page"))


async def test_size_cap_truncates(fetcher: Fetcher, web: FakeWeb) -> None:
    page = await fetcher.fetch(web.url("/huge"))
    assert page.truncated
    assert len(page.body) == 50_000
    assert extract(page).truncated


async def test_slow_page_times_out(web: FakeWeb) -> None:
    async with Fetcher(allow_hosts=[web.hostport], timeout_s=0.5) as fetcher:
        with pytest.raises(FetchError, match=r"timed out after 0.5 s"):
            await fetcher.fetch(web.url("/slow"))


async def test_total_deadline_stops_a_dripping_body(web: FakeWeb) -> None:
    # Each byte arrives within the read timeout; only the whole-fetch deadline can stop it.
    async with Fetcher(allow_hosts=[web.hostport], timeout_s=1.0) as fetcher:
        with pytest.raises(FetchError, match="timed out"):
            await fetcher.fetch(web.url("/drip"))


async def test_binary_file_is_not_downloaded_and_cannot_be_read(fetcher: Fetcher, web: FakeWeb) -> None:
    page = await fetcher.fetch(web.url("/image.png"))
    assert page.kind is MediaKind.BINARY and page.body == b""
    with pytest.raises(ExtractError, match=r"binary file \(image/png\); it cannot be read"):
        extract(page)
    with pytest.raises(ExtractError, match=r"application/octet-stream"):
        extract(await fetcher.fetch(web.url("/download")))


async def test_broken_pdf_is_an_error(fetcher: Fetcher, web: FakeWeb) -> None:
    page = await fetcher.fetch(web.url("/paper.pdf"))  # "%PDF-1.4 %fake": a header and nothing else
    assert page.kind is MediaKind.PDF
    with pytest.raises(ExtractError, match="the PDF could not be read"):
        extract(page)


async def test_charset_from_header(fetcher: Fetcher, web: FakeWeb) -> None:
    doc = extract(await fetcher.fetch(web.url("/latin1")))
    assert doc.title == "Caf\u00e9 menu"
    assert "Cr\u00e8me br\u00fbl\u00e9e costs 7 \u00a3." in doc.text


async def test_charset_from_meta_tag(fetcher: Fetcher, web: FakeWeb) -> None:
    doc = extract(await fetcher.fetch(web.url("/meta-charset")))
    assert doc.title == "Se\u00f1or"
    assert "Pi\u00f1ata \u2013 \u201cquoted\u201d \u20ac5" in doc.text


def test_decode_body_fallbacks() -> None:
    assert decode_body("caf\u00e9".encode("utf-8")) == "caf\u00e9"
    assert decode_body(b"caf\xe9") == "caf\u00e9"  # no UTF-8 at all: windows-1252, as browsers read it
    assert decode_body("caf\u00e9 ".encode() + b"\xff") == "caf\u00e9 \ufffd"  # UTF-8 with one bad byte stays UTF-8
    assert decode_body(b"caf\xe9", "no-such-codec") == "caf\u00e9"
    assert decode_body("\ufeffhi".encode("utf-8"), "latin-1") == "hi"  # a BOM wins over the header
    assert decode_body(b"\x93x\x94", "iso-8859-1") == "\u201cx\u201d"  # read as windows-1252
    assert decode_body(b"abc", "no-such-codec") == "abc"


async def test_untyped_page_is_sniffed(fetcher: Fetcher, web: FakeWeb) -> None:
    page = await fetcher.fetch(web.url("/no-type"))
    assert page.kind is MediaKind.HTML
    assert extract(page).text == "Untyped page."


# ---- SSRF at every hop and at connect time -------------------------------------------------------


async def test_redirect_to_internal_service_is_refused(fetcher: Fetcher, web: FakeWeb, internal: FakeWeb) -> None:
    web.add_redirect("/to-internal", internal.url("/secret"))
    internal.reset()
    with pytest.raises(BlockedURLError, match="refused: 127.0.0.1 is a loopback address"):
        await fetcher.fetch(web.url("/to-internal"))
    assert sum(internal.hits.values()) == 0


async def test_redirect_to_file_scheme_is_refused(fetcher: Fetcher, web: FakeWeb) -> None:
    web.add_redirect("/to-file", "file:///etc/passwd")
    with pytest.raises(BlockedURLError, match="file: is not allowed"):
        await fetcher.fetch(web.url("/to-file"))


async def test_allow_list_opens_exactly_one_port(fetcher: Fetcher, web: FakeWeb, internal: FakeWeb) -> None:
    internal.reset()
    assert (await fetcher.fetch(web.url("/final"))).status == 200  # web's host:port is listed
    with pytest.raises(BlockedURLError, match="loopback"):
        await fetcher.fetch(internal.url("/secret"))  # same host, other port
    assert sum(internal.hits.values()) == 0


async def test_nothing_loopback_is_fetched_without_allow_list(web: FakeWeb) -> None:
    web.reset()
    async with Fetcher(timeout_s=5) as fetcher:
        with pytest.raises(BlockedURLError):
            await fetcher.fetch(web.url("/article"))
    assert sum(web.hits.values()) == 0


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where it was asked to connect, connects nowhere."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, **kwargs: object) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


async def test_connect_time_check_closes_the_dns_rebinding_gap() -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # public for the check, loopback at connect

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    guard = SSRFGuard(resolver=rebinding)
    sockets = RecordingBackend()
    backend = GuardedNetworkBackend(guard, inner=sockets)
    await guard.check_url("http://rebind.test/")  # the hop check sees a public address
    with pytest.raises(BlockedURLError, match="rebind.test resolves to 127.0.0.1"):
        await backend.connect_tcp("rebind.test", 80)
    assert sockets.connects == []


async def test_backend_connects_to_the_vetted_ip_not_the_name() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "2606:2800:220:1::"]

    sockets = RecordingBackend()
    backend = GuardedNetworkBackend(SSRFGuard(resolver=resolve), inner=sockets)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("example.test", 443)
    assert sockets.connects == [("93.184.216.34", 443), ("2606:2800:220:1::", 443)]  # tried in order
    with pytest.raises(BlockedURLError, match="unix sockets"):
        await backend.connect_unix_socket("/var/run/docker.sock")


async def test_guarded_transport_refuses_on_its_own(internal: FakeWeb) -> None:
    internal.reset()
    async with httpx.AsyncClient(transport=GuardedTransport(SSRFGuard())) as client:
        with pytest.raises(BlockedURLError, match="loopback"):
            await client.get(internal.url("/secret"))
    assert sum(internal.hits.values()) == 0


async def test_connects_to_the_vetted_ip_and_keeps_the_host_name(web: FakeWeb) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "site.test"
        return ["127.0.0.1"]

    port = port_of(web)
    async with Fetcher(allow_hosts=[f"site.test:{port}"], timeout_s=5, resolver=resolve) as fetcher:
        page = await fetcher.fetch(f"http://site.test:{port}/final")
    assert page.status == 200
    assert [r for r in web.requests if r["path"] == "/final"][-1]["headers"]["host"] == f"site.test:{port}"
