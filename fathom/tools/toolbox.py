"""The research tools the search model calls: ``search_urls`` and ``query_url``.

:class:`Toolbox` ties a search backend, the page fetcher, text extraction and evidence selection
together (pages are read by :class:`~fathom.tools.readers.ReaderChain`: site readers, the page
itself, a browser and archive.org as fallbacks), and turns every failure into one clear ``[error] …`` line for the model (never the
duplicated ``result:``/``error:`` text of upstream, bug T15). Each call runs under a deadline
(``tool_timeout_s``) that really cancels the work in flight (bug T2), and fetches are limited
per host and overall, so one turn's parallel calls cannot hammer a site.

With a :class:`~fathom.store.cache.ToolCache`, searches, pages and evidence already paid for are
reused. With ``prefetch_pages``, the research loop reads the top results of a search ahead while
the model writes its next turn (:attr:`Toolbox.prefetcher`, see :mod:`fathom.tools.prefetch`), and
``query_url`` takes a page read ahead instead of fetching it again. With a local corpus
(``--search-backend local``), ``query_url`` also reads ``file://`` URLs, but only of files the
corpus has indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fathom.aio import AsyncClosing
from fathom.tools.base import (
    FileIndex,
    SearchBackend,
    SearchHit,
    Source,
    ToolCache,
    ToolError,
    ToolOutcome,
)
from fathom.tools.evidence import EvidenceExtractor
from fathom.tools.extract import Document
from fathom.tools.fetch import Fetcher
from fathom.tools.prefetch import Prefetcher
from fathom.tools.readers import ReaderChain, ReadFailure, Reading
from fathom.tools.search import dedupe_hits, format_search_results
from fathom.tools.specs import MAX_TOP_K
from fathom.tools.ssrf import BlockedURLError, split_url

log = logging.getLogger(__name__)

INVALID_URL = "[error] invalid URL \u2013 must start with http:// or https://"
PER_HOST_FETCHES = 4
MAX_FETCHES = 32
WEB_SCHEMES = ("http://", "https://")
PAGE_SEPARATOR = "\n\n---\n\n"  # between the pages :meth:`Toolbox.search_pages` read


class _StageFailure(Exception):
    """Reading a page failed at ``stage`` ("fetch" or "read") for ``reason`` (model-readable)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


class Toolbox(AsyncClosing):
    """The tools of one research run (built by :func:`fathom.app.services.toolbox`); ``owned``
    resources are closed by :meth:`aclose`, injected ones are left to their owner."""

    def __init__(
        self,
        *,
        search_backend: SearchBackend,
        fetcher: Fetcher,
        extractor: EvidenceExtractor,
        tool_timeout_s: float = 90.0,
        default_top_k: int = 10,
        per_host_fetches: int = PER_HOST_FETCHES,
        max_fetches: int = MAX_FETCHES,
        cache: ToolCache | None = None,
        corpus: FileIndex | None = None,
        reader: ReaderChain | None = None,
        prefetch_pages: int = 0,
        prefetch_max_bytes: int = 8_000_000,
        owned: tuple[Any, ...] = (),
    ) -> None:
        self.search_backend = search_backend
        self.fetcher = fetcher
        self.reader = reader or ReaderChain(fetcher)  # default: the page itself, no site readers
        self.extractor = extractor
        self.tool_timeout_s = tool_timeout_s
        self.default_top_k = default_top_k
        self._per_host_fetches = per_host_fetches
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._all_slots = asyncio.Semaphore(max_fetches)
        self.cache = cache
        self.corpus = corpus  # set: file:// URLs of its indexed files can be read
        self._owned = owned
        # At most half the fetch slots go to reads ahead: the reads a turn asked for come first.
        self.prefetcher = Prefetcher(
            self._read_ahead, pages=prefetch_pages, max_bytes=prefetch_max_bytes,
            max_in_flight=max(1, max_fetches // 2), timeout_s=tool_timeout_s,
        ) if prefetch_pages > 0 else None

    # ---- tools ------------------------------------------------------------------------------

    async def search_urls(self, query: str, top_k: int | None = None) -> ToolOutcome:
        """Web search: hits as markdown (upstream layout); ``sources`` are the hits' URLs and titles."""
        query = " ".join(str(query or "").split())
        if not query:
            return _error("search_urls needs a non-empty query")
        deadline = asyncio.get_running_loop().time() + self.tool_timeout_s
        hits = await self._search(query, _clamp_top_k(top_k, self.default_top_k), deadline)
        if isinstance(hits, ToolOutcome):
            return hits
        return ToolOutcome(
            text=format_search_results(hits, query),
            ok=True,
            sources=[Source(url=h["url"], title=h["title"]) for h in hits],
        )

    async def _search(self, query: str, k: int, deadline: float) -> list[SearchHit] | ToolOutcome:
        """The backend's hits by ``deadline`` (loop time), or the tool error the model reads."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._hits(query, k)
        except TimeoutError:
            return _error(f"search timed out after {self.tool_timeout_s:g} s")
        except ToolError as exc:
            return _error(f"search failed: {exc}")
        except Exception as exc:  # a backend bug must not end the research run
            log.exception("search backend %s failed", getattr(self.search_backend, "name", "?"))
            return _error(f"search failed: {type(exc).__name__}: {exc}")

    async def query_url(self, url: str, goal: str) -> ToolOutcome:
        """Read ``url`` and return what it says about ``goal`` (see :mod:`fathom.tools.evidence`)."""
        url = str(url or "").strip()
        goal = " ".join(str(goal or "").split())
        if self.corpus is not None and url.lower().startswith("file:"):
            return await self._query_file(self.corpus, url, goal)
        try:
            _, host, _ = split_url(url)
        except BlockedURLError:
            return ToolOutcome(text=INVALID_URL, ok=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.tool_timeout_s
        extractor = self.extractor.identity
        try:
            async with asyncio.timeout_at(deadline):
                if self.cache:  # a page cached while its host was allowed is not served once it is not
                    try:
                        await self.reader.vet(url)
                    except ToolError as exc:
                        raise _StageFailure("fetch", str(exc)) from None
                cached = await self.cache.get_evidence(url, goal, extractor) if self.cache else None
                if cached is not None:
                    return ToolOutcome(text=cached.text, ok=True, sources=cached.sources)
                doc = await self._document(url, host)
                # Leave the extractive fallback time to run if the query LLM is slow.
                llm_budget = deadline - loop.time() - min(5.0, 0.1 * self.tool_timeout_s)
                evidence = await self.extractor.extract(doc, goal, url=url, timeout_s=max(0.1, llm_budget))
                text = evidence.text
                if doc.note and doc.note not in text:  # whichever passages were chosen
                    text = f"{doc.note}\n\n{text}"
                sources = [Source(url=url, title=doc.title or url)]
                if doc.url != url:
                    sources.append(Source(url=doc.url, title=doc.title or doc.url))
                if self.cache and evidence.fallback_reason is None:  # a fallback is not the real thing
                    await self.cache.put_evidence(url, goal, extractor, text, sources)
        except TimeoutError:
            return _error(f"query_url timed out after {self.tool_timeout_s:g} s for {url}")
        except Exception as exc:
            return _read_failure("query_url", url, exc)
        return ToolOutcome(text=text, ok=True, sources=sources)

    async def read_page(self, url: str, max_chars: int) -> ToolOutcome:
        """The page's own text (title first), cut at ``max_chars``: for protocols whose models
        read whole pages rather than evidence (the cap keeps a page inside their context)."""
        url = str(url or "").strip()
        try:
            _, host, _ = split_url(url)
        except BlockedURLError:
            return ToolOutcome(text=INVALID_URL, ok=False)
        try:
            async with asyncio.timeout(self.tool_timeout_s):
                doc = await self._vetted_document(url, host)
        except TimeoutError:
            return _error(f"reading {url} timed out after {self.tool_timeout_s:g} s")
        except Exception as exc:
            return _read_failure("read_page", url, exc)
        head = "\n".join(part for part in (doc.title, doc.note) if part)
        text = f"{head}\n\n{_cut(doc.text, max_chars)}" if head else _cut(doc.text, max_chars)
        return ToolOutcome(text=text, ok=True, sources=[Source(url=url, title=doc.title or url)])

    async def search_pages(
        self, query: str, top_k: int | None = None, *, read: int = 3, want: int = 0, host: str = "",
        max_chars: int = 35000,
    ) -> ToolOutcome:
        """Search, then read the first ``read`` hits (only those on ``host`` when given), in hit
        order, stopping once ``want`` of them had text (0: all); each page is cut at ``max_chars``.

        ``text`` holds the pages read (or the hits when none was); ``data`` has the hits with
        their snippets and, per page, its hit and where its text sits: ``text[start:end]``.
        """
        query = " ".join(str(query or "").split())
        if not query:
            return _error("search needs a non-empty query")
        deadline = asyncio.get_running_loop().time() + self.tool_timeout_s
        hits = await self._search(query, _clamp_top_k(top_k, self.default_top_k), deadline)
        if isinstance(hits, ToolOutcome):
            return hits
        candidates = [h for h in hits if not host or _on_host(h["url"], host)][: max(0, read)]
        found: list[tuple[SearchHit, Document]] = []
        step = 3  # pages read at once: enough for speed, few wasted when ``want`` is small
        for first in range(0, len(candidates), step):
            batch = candidates[first : first + step]
            docs = await asyncio.gather(*(self._page_or_none(h["url"], deadline) for h in batch))
            found += [(hit, doc) for hit, doc in zip(batch, docs, strict=True) if doc is not None]
            if want and len(found) >= want:
                found = found[:want]
                break
        sources = [Source(url=h["url"], title=h["title"]) for h in hits]
        data: dict[str, Any] = {"hits": [dict(h) for h in hits], "pages": []}
        if not found:
            return ToolOutcome(text=format_search_results(hits, query), ok=True, sources=sources, data=data)
        parts: list[str] = []
        at = 0
        for hit, doc in found:
            head = f"### {doc.title or hit['title'] or hit['url']}\n**URL**: {hit['url']}\n\n"
            body = _cut(doc.text, max_chars)
            start = at + len(head)
            data["pages"].append({**hit, "title": doc.title or hit["title"], "start": start, "end": start + len(body)})
            parts.append(head + body)
            at = start + len(body) + len(PAGE_SEPARATOR)
        return ToolOutcome(text=PAGE_SEPARATOR.join(parts), ok=True, sources=sources, data=data)

    async def _page_or_none(self, url: str, deadline: float) -> Document | None:
        """A page with text, or None when it cannot be read by ``deadline`` (the next hit is tried)."""
        try:
            _, host, _ = split_url(url)
            async with asyncio.timeout_at(deadline):
                doc = await self._vetted_document(url, host)
        except (BlockedURLError, TimeoutError, _StageFailure):
            return None
        except Exception:  # one bad page must not fail the search
            log.exception("reading %s failed", url)
            return None
        return doc if doc.text.strip() else None

    async def _vetted_document(self, url: str, host: str) -> Document:
        """:meth:`_document` past today's SSRF guard and allow-list even when the page is cached."""
        if self.cache:
            try:
                await self.reader.vet(url)
            except ToolError as exc:
                raise _StageFailure("fetch", str(exc)) from None
        return await self._document(url, host)

    async def _hits(self, query: str, k: int) -> list[SearchHit]:
        """The backend's hits for ``query`` (cached, deduplicated); raises as the backend does."""
        backend = str(getattr(self.search_backend, "name", "?"))
        # A local corpus changes when it is re-indexed, and searching it costs nothing: not cached.
        cache = self.cache if backend != "local" else None
        hits = await cache.get_search(backend, query, k) if cache else None
        if hits is None:
            hits = dedupe_hits(await self.search_backend.search(query, k), k, schemes=self._schemes)
            if cache:
                await cache.put_search(backend, query, k, hits)
        return hits

    async def _document(self, url: str, host: str) -> Document:
        """The page's text: read ahead, or from the cache, else read by the reader chain (and then cached)."""
        if self.prefetcher is not None and (ahead := await self.prefetcher.take(url)) is not None:
            return ahead.document  # cached already, by the read ahead
        cached = await self.cache.get_page(url) if self.cache else None
        if cached is not None:
            if cached.document is None:
                raise _StageFailure(cached.stage or "fetch", cached.error or "failed")
            return cached.document
        return (await self._read(url, host)).document

    async def _read(self, url: str, host: str) -> Reading:
        """Read the page with the reader chain and cache what came of it (a lasting failure too)."""
        try:
            async with self._fetch_slot(host):
                reading = await self.reader.read(url)
        except ReadFailure as exc:
            if self.cache and exc.lasting:  # gone or unreadable: a property of the page
                await self.cache.put_page_failure(url, "read" if exc.stage == "read" else "fetch", str(exc))
            raise _StageFailure(exc.stage, str(exc)) from None
        except ToolError as exc:
            raise _StageFailure("fetch", str(exc)) from None
        if self.cache:
            await self.cache.put_page(url, reading.document, reading.reader)
        return reading

    async def _read_ahead(self, url: str) -> Reading | None:
        """What ``query_url`` would read for ``url``, read before it is asked for, and cached as
        ``query_url`` caches it (so it also outlives a crash); None when the URL is not to be read
        ahead (refused by the SSRF guard or allow-list, read through a site's API or Jina, cached
        already) or the read failed (``query_url`` then tries itself, or finds a lasting failure
        in the cache)."""
        if not url.lower().startswith(WEB_SCHEMES):
            return None
        try:
            _, host, _ = split_url(url)
            if not self.reader.reads_itself(url):
                return None
            await self.reader.vet(url)  # the guard decides before anything connects
        except ToolError:
            return None
        if self.cache and await self.cache.get_page(url) is not None:
            return None  # query_url finds it there
        try:
            return await self._read(url, host)
        except _StageFailure:
            return None

    async def _query_file(self, corpus: FileIndex, url: str, goal: str) -> ToolOutcome:
        """``query_url`` for a ``file://`` URL: only files of the local corpus, read from its index."""
        try:
            async with asyncio.timeout(self.tool_timeout_s):
                doc = await corpus.read(url)
                evidence = await self.extractor.extract(doc, goal, url=url, timeout_s=self.tool_timeout_s / 2)
        except TimeoutError:
            return _error(f"query_url timed out after {self.tool_timeout_s:g} s for {url}")
        except ToolError as exc:
            return _error(f"could not read {url}: {exc}")
        return ToolOutcome(text=evidence.text, ok=True, sources=[Source(url=url, title=doc.title or url)])

    @property
    def _schemes(self) -> tuple[str, ...]:
        """URL schemes a search hit may have: ``file://`` only when a local corpus can read it."""
        return (*WEB_SCHEMES, "file://") if self.corpus is not None else WEB_SCHEMES

    # ---- plumbing ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _fetch_slot(self, host: str) -> AsyncIterator[None]:
        slot = self._host_slots.setdefault(host, asyncio.Semaphore(self._per_host_fetches))
        async with self._all_slots, slot:
            yield

    async def aclose(self) -> None:
        """Stop reading ahead, then close what this toolbox owns (clients, connection pools)."""
        if self.prefetcher is not None:
            await self.prefetcher.aclose()
        for resource in reversed(self._owned):
            close = getattr(resource, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


def _read_failure(tool: str, url: str, exc: Exception) -> ToolOutcome:
    """The tool error for a page that could not be fetched or read (called in its except block)."""
    if isinstance(exc, _StageFailure):
        verb = "could not fetch" if exc.stage == "fetch" else "could not read"
        return _error(f"{verb} {url}: {exc.reason}")
    log.exception("%s %s failed", tool, url)  # a bug in one page's handling must not end the run
    return _error(f"could not read {url}: {type(exc).__name__}: {exc}")

def _error(message: str) -> ToolOutcome:
    return ToolOutcome(text=f"[error] {message}", ok=False)


def _cut(text: str, max_chars: int) -> str:
    """``text`` cut at ``max_chars`` characters, marked when cut."""
    if len(text) <= max_chars:
        return text
    return f"{text[: max(0, max_chars)]}\n[truncated at {max_chars} of {len(text)} characters]"


def _on_host(url: str, host: str) -> bool:
    """Whether ``url`` is on ``host`` or one of its subdomains."""
    try:
        _, url_host, _ = split_url(url)
    except BlockedURLError:
        return False
    url_host, host = url_host.lower(), host.lower()
    return url_host == host or url_host.endswith("." + host)


def _clamp_top_k(top_k: Any, default: int) -> int:
    try:
        k = int(top_k) if top_k is not None else default
    except (TypeError, ValueError):
        k = default
    return max(1, min(MAX_TOP_K, k))
