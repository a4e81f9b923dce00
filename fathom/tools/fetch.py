"""Fetch one web page for reading: bounded in time, size and redirects, and behind the SSRF guard.

:meth:`Fetcher.fetch` returns a :class:`Page` (raw bytes plus what is needed to decode them) or
raises :class:`FetchError` with a one-line reason the model can read ("HTTP 404 Not Found",
"timed out after 20 s", "refused: 10.0.0.5 is a private address").
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from fathom.aio import AsyncClosing
from fathom.errors import one_line
from fathom.tools.base import ToolError
from fathom.tools.media import MediaKind, classify, header_charset, media_type, sniff
from fathom.tools.ssrf import GuardedTransport, Resolver, SSRFGuard

# A current desktop browser's UA (many sites serve bots a stub page), plus our own product token
# so site owners can tell who is reading.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 FathomResearch/0.1"
)
DEFAULT_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,text/plain;q=0.8,*/*;q=0.5",
    "Accept-Language": "en-US,en;q=0.9",
}
MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
# Browsers read these labels as windows-1252 (WHATWG Encoding), and so do the pages labelled so.
_CODEC_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                  "ascii": "cp1252", "iso8859-1": "cp1252"}


class FetchError(ToolError):
    """The page could not be fetched; the message is the reason, without the URL.

    ``status`` is the HTTP status of a refusal (401, 403, 404, 429...), ``None`` for other failures;
    ``retry_after`` the wait in seconds a 429 or 503 asked for.
    """

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds, from a Retry-After header given in seconds


@dataclass(frozen=True)
class Hop:
    """One HTTP exchange, redirects not followed: what a headless browser is handed back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Page:
    """A fetched response: what was asked for, where it ended up, and the (possibly cut) body."""

    url: str
    final_url: str
    status: int
    content_type: str
    kind: MediaKind
    body: bytes
    truncated: bool = False
    charset: str | None = None  # from the Content-Type header

    @property
    def media_type(self) -> str:
        return media_type(self.content_type) or "unknown type"

    def text(self) -> str:
        """The body decoded: BOM, then header charset, then ``<meta charset>``, then UTF-8."""
        return decode_body(self.body, self.charset, html=self.kind is MediaKind.HTML)


def decode_body(body: bytes, charset: str | None = None, *, html: bool = False) -> str:
    """Decode bytes the way a browser would; undecodable bytes become U+FFFD, never an error."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    candidates = [charset]
    if html and (match := _META_CHARSET.search(body[:4096])):
        candidates.append(match.group(1).decode("ascii", "ignore"))
    for name in candidates:
        codec = _codec(name)
        if codec:
            return body.decode(codec, errors="replace")
    # No usable label: UTF-8, unless no byte of it forms a UTF-8 character (then it is the web's
    # legacy default, windows-1252, as browsers assume: "caf\xe9" is "café", not "caf\ufffd").
    text = body.decode("utf-8", errors="replace")
    if "\ufffd" in text and not any(ord(c) > 127 and c != "\ufffd" for c in text):
        return body.decode("cp1252", errors="replace")
    return text


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().lower()
    name = _CODEC_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


class Fetcher(AsyncClosing):
    """Fetches pages over one pooled, SSRF-guarded httpx client. Close it with :meth:`aclose`.

    ``timeout_s`` bounds each connect/read and also the whole fetch, redirects included;
    ``max_bytes`` caps the (decompressed) body, which is cut there and marked ``truncated``.
    """

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str] = (),
        timeout_s: float = 20.0,
        max_bytes: int = 5_000_000,
        max_redirects: int = MAX_REDIRECTS,
        resolver: Resolver | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.guard = SSRFGuard(allow_hosts, resolver=resolver)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(self.guard),
            headers={**DEFAULT_HEADERS, **(headers or {})},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            follow_redirects=False,  # followed by hand, so every hop is vetted
            trust_env=False,
        )

    async def fetch(self, url: str, *, headers: dict[str, str] | None = None) -> Page:
        """GET ``url`` following at most ``max_redirects`` redirects; raises :class:`FetchError`.

        ``headers`` (an API key, an ``Accept``) go only to ``url``'s own origin: a redirect to
        another scheme, host or port drops them, so a key never leaves the service it belongs to.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._fetch(url, headers or {})
        except (TimeoutError, httpx.TimeoutException):
            raise FetchError(f"timed out after {self.timeout_s:g} s") from None
        except httpx.ConnectError as exc:
            raise FetchError(f"could not connect ({_short(exc)})") from None
        except httpx.InvalidURL as exc:
            raise FetchError(f"invalid URL ({exc})") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__} ({_short(exc)})") from None

    async def _fetch(self, url: str, headers: dict[str, str]) -> Page:
        current = url
        origin = _origin(url)
        for _ in range(self.max_redirects + 1):
            await self.guard.check_url(current)
            extra = headers if _origin(current) == origin else {}
            request = self._client.build_request("GET", current, headers=extra)
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code in _REDIRECT_CODES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError(f"HTTP {response.status_code} redirect without a Location")
                    current = str(response.url.join(location))
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                                     status=response.status_code, retry_after=_seconds(response.headers.get("retry-after")))
                return await self._read(url, response)
            finally:
                await response.aclose()
        raise FetchError(f"too many redirects (more than {self.max_redirects})")

    async def hop(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                  content: bytes | None = None, max_bytes: int | None = None) -> Hop:
        """One request, redirects handed back rather than followed (a browser follows them, and
        asks again through here): vetted by the SSRF guard, bounded in time and bytes."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.guard.check_url(url)
                request = self._client.build_request(method, url, headers=headers, content=content)
                response = await self._client.send(request, stream=True)
                try:
                    body, _ = await _read_capped(response, max_bytes or self.max_bytes)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise FetchError(f"timed out after {self.timeout_s:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(f"{type(exc).__name__} ({_short(exc)})") from None
        # The body is handed on decoded: its transfer headers no longer describe it.
        kept = [(k, v) for k, v in response.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return Hop(status=response.status_code, headers=kept, body=body)

    async def _read(self, url: str, response: httpx.Response) -> Page:
        content_type = response.headers.get("content-type", "")
        final_url = str(response.url)
        kind = classify(content_type, final_url)
        body, truncated = b"", False
        if kind is not MediaKind.BINARY:  # a binary body is refused unread
            body, truncated = await _read_capped(response, self.max_bytes)
        if kind is None:
            kind = sniff(body)
        return Page(
            url=url, final_url=final_url, status=response.status_code, content_type=content_type,
            kind=kind, body=body, truncated=truncated, charset=header_charset(content_type),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """Read at most ``max_bytes`` of the decoded body; stop the download there (no buffering beyond)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > max_bytes:
            chunks.append(chunk[: max_bytes - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: not worth a wait here
        return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port


def _short(exc: BaseException) -> str:
    return one_line(exc, 200) or type(exc).__name__
