"""Search hits: cleaning, de-duplication by normalised URL, and the markdown layout the model reads."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fathom.errors import one_line
from fathom.tools.base import SearchHit

_TRACKING_PARAMS = frozenset({"gclid", "fbclid", "msclkid", "yclid", "dclid", "mc_cid", "mc_eid", "ref_src"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def make_hit(title: object, url: object, snippet: object) -> SearchHit:
    """A hit with whitespace collapsed (a newline in a title would break the layout)."""
    return SearchHit(title=one_line(title or "", None), url=str(url or "").strip(), snippet=one_line(snippet or "", None))


def normalize_url(url: str) -> str:
    """A key under which spellings of one page compare equal.

    Scheme, ``www.``, default port, fragment, trailing slash and tracking parameters are ignored.
    Used only to compare; hits keep the URL as the engine gave it.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").removeprefix("www.")
    if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
         if k.lower() not in _TRACKING_PARAMS and not k.lower().startswith("utm_")]
    )
    return urlunsplit(("", host, parts.path.rstrip("/"), query, ""))


def dedupe_hits(
    hits: Iterable[SearchHit], top_k: int | None = None, *, schemes: tuple[str, ...] = ("http://", "https://")
) -> list[SearchHit]:
    """Hits without empty URLs, other ``schemes`` or repeats (first one wins), at most ``top_k`` of them."""
    seen: set[str] = set()
    out: list[SearchHit] = []
    for hit in hits:
        if not hit["url"].startswith(schemes):
            continue
        key = normalize_url(hit["url"])
        if key in seen:
            continue
        seen.add(key)
        out.append(hit)
        if top_k is not None and len(out) >= top_k:
            break
    return out


def format_search_results(hits: list[SearchHit], query: str = "") -> str:
    """Upstream's exact layout: ``### {i}. {title}\\n**URL**: {link}\\n\\n**Snippet**: {snippet}\\n``
    per hit, numbered from 1, joined with ``\\n---\\n\\n``.

    Zero hits give a short sentence instead of upstream's empty string, so the model knows the
    search ran and found nothing.
    """
    if not hits:
        return f'No results found for "{query}".' if query else "No results found."
    return "\n---\n\n".join(
        f"### {i}. {hit['title'] or hit['url']}\n**URL**: {hit['url']}\n\n**Snippet**: {hit['snippet']}\n"
        for i, hit in enumerate(hits, start=1)
    )
