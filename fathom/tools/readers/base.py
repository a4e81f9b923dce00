"""What every page reader shares: the :class:`Reader` interface, its errors and JSON/text helpers.

A reader turns a URL into a :class:`~fathom.tools.extract.Document`. Site readers (GitHub, Reddit,
YouTube, arXiv, Wikipedia) are picked by the URL's parsed host; they answer ``None`` for a page of
their site they do not know (a user profile, a search page), and the chain reads it as a page.
Every request goes through the one :class:`~fathom.tools.fetch.Fetcher`, so through its SSRF guard
and allow-list, its size cap and its redirect limit.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import SplitResult, urlsplit

from fathom.tools.base import ReaderNotes, ToolError
from fathom.tools.extract import Document
from fathom.tools.fetch import Fetcher

__all__ = ["Reader", "ReaderError", "ReaderNotes", "clip", "get_json", "host_in", "parts", "path_segments"]


class ReaderError(ToolError):
    """A reader could not read the page; the message says why (without the URL)."""


class Reader(Protocol):
    """One way of reading pages. ``name`` appears in failure texts and in the page cache."""

    name: str
    timeout_s: float

    def handles(self, host: str) -> bool:
        """Whether URLs of ``host`` (lower case, no port) are this reader's to read."""
        ...

    async def read(self, url: str) -> Document | None:
        """The page's text; ``None`` when this page of the site is not one the reader knows.
        Raises :class:`~fathom.errors.ToolError` when it should be and cannot be read."""
        ...


def parts(url: str) -> SplitResult:
    return urlsplit(url.strip())


def host_in(host: str, *domains: str) -> bool:
    """``host`` is one of ``domains`` or a subdomain of one (``en.wikipedia.org`` in ``wikipedia.org``)."""
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def path_segments(url: str) -> list[str]:
    return [s for s in parts(url).path.split("/") if s]


async def get_json(fetcher: Fetcher, url: str, headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` and parse its body as JSON; raises :class:`ReaderError` on a non-JSON answer."""
    page = await fetcher.fetch(url, headers={"Accept": "application/json", **(headers or {})})
    if page.truncated:
        raise ReaderError(f"the answer was larger than {fetcher.max_bytes:,} bytes")
    try:
        return json.loads(page.text())
    except ValueError:
        raise ReaderError(f"the answer was not JSON ({page.media_type})") from None


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, with an ellipsis when cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"
