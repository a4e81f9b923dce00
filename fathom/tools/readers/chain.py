"""The reader chain: which readers read a URL, in which order, and what a failed read says.

For a URL, the site readers whose host it is come first (GitHub, Reddit, YouTube, arXiv,
Wikipedia: chosen by the parsed host, never by substrings of the URL); then Jina's reader when
``--reader jina``; then the page itself (fetched and extracted by its media type). An HTML page
with too little text and a script is rendered by the headless browser when there is one. A page
that refuses us (HTTP 401, 403, 429; a 429 after one short wait) is read from its Internet
Archive snapshot, labelled as such.

Each reader runs under its own time cap; its failure is remembered and the next reader tried.
When none succeeds, :class:`ReadFailure` says why the page itself failed, then why each other
reader did, in one line the model can act on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fathom.retry import RetriesExhausted, RetryPolicy, Transient, call_with_retries
from fathom.tools.base import ToolError
from fathom.tools.extract import Document, ExtractError, extract
from fathom.tools.fetch import Fetcher, FetchError, Page
from fathom.tools.media import MediaKind
from fathom.tools.readers.archive import ArchiveReader
from fathom.tools.readers.base import Reader, ReaderNotes
from fathom.tools.ssrf import split_url

log = logging.getLogger(__name__)
MIN_PAGE_CHARS = 300  # an HTML page with less text is likely written by its scripts
BLOCKED_STATUSES = frozenset({401, 403, 429})
LASTING_STATUSES = frozenset({404, 410})
_SCRIPT = re.compile(rb"<script\b", re.IGNORECASE)
THROTTLED_RETRY = RetryPolicy(attempts=2, base_delay_s=1.0, max_delay_s=2.0, max_retry_after_s=5.0)


@dataclass(frozen=True)
class Reading:
    """A page's document and the reader that produced it (``"github"``, ``"html"``, ``"archive.org"``…)."""

    document: Document
    reader: str


class ReadFailure(ToolError):
    """No reader could read the page. ``stage`` is ``fetch`` or ``read``; ``lasting`` says the
    failure belongs to the page (gone, unreadable), not the moment, and may be remembered."""

    def __init__(self, message: str, *, stage: str, lasting: bool = False) -> None:
        super().__init__(message)
        self.stage, self.lasting = stage, lasting


class ReaderChain:
    """Reads URLs with ``sites`` (by host), then ``jina``, then the page itself through ``fetcher``,
    with ``browser`` and ``archive`` as fallbacks. Owns the browser: close with :meth:`aclose`."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        sites: Sequence[Reader] = (),
        jina: Reader | None = None,
        browser: Reader | None = None,
        archive: ArchiveReader | None = None,
        notes: ReaderNotes | None = None,
        browser_missing: bool = False,
        min_page_chars: int = MIN_PAGE_CHARS,
        retry: RetryPolicy = THROTTLED_RETRY,
    ) -> None:
        self.retry = retry
        self.fetcher, self.sites, self.jina, self.browser, self.archive = fetcher, tuple(sites), jina, browser, archive
        # say so when a page needs the browser we lack
        self.browser_missing = notes.browser_missing if notes is not None and browser_missing else None
        self.min_page_chars = min_page_chars

    async def read(self, url: str) -> Reading:
        """The document of ``url``; raises :class:`ReadFailure` when every reader failed."""
        _, host, _ = split_url(url)
        failures: list[str] = []
        for reader in self.sites:
            if reader.handles(host.lower()) and (doc := await self._try(reader, url, failures)):
                return Reading(doc, reader.name)
        if self.jina is not None and (doc := await self._try(self.jina, url, failures)):
            return Reading(doc, self.jina.name)
        try:
            page = await self._fetch_page(url)
        except FetchError as exc:
            if exc.status in BLOCKED_STATUSES and self.archive is not None:
                if doc := await self._try_archive(url, str(exc), failures):
                    return Reading(doc, self.archive.name)
            raise _failure(str(exc), failures, stage="fetch", lasting=exc.status in LASTING_STATUSES) from None
        except ToolError as exc:  # refused by the SSRF guard, unresolvable host...
            raise _failure(str(exc), failures, stage="fetch") from None
        doc, error = None, None
        try:
            doc = await asyncio.to_thread(extract, page)  # CPU work: off the event loop
        except ToolError as exc:
            error = exc
        if (page.kind is MediaKind.HTML and (doc is None or len(doc.text) < self.min_page_chars)
                and _SCRIPT.search(page.body)):  # no script, nothing for a browser to add
            if self.browser is not None:
                rendered = await self._try(self.browser, url, failures)
                if rendered is not None and (doc is None or len(rendered.text) > len(doc.text)):
                    return Reading(rendered, self.browser.name)
            elif self.browser_missing and doc is None:
                failures.append(reader_failure("browser", self.browser_missing))
        if doc is None:
            assert error is not None
            raise _failure(str(error), failures, stage="read", lasting=isinstance(error, ExtractError)) from None
        return Reading(doc, page.kind.value)

    async def _fetch_page(self, url: str) -> Page:
        """The page itself; a 429 ("too many requests") is tried again after the wait it asks for
        (a short one only: a long wait is for the archive's snapshot to cover)."""

        async def attempt() -> Page:
            try:
                return await self.fetcher.fetch(url)
            except FetchError as exc:
                if exc.status == 429:
                    raise _Throttled(exc) from None
                raise

        try:
            return await call_with_retries(attempt, self.retry)
        except RetriesExhausted as exc:
            assert isinstance(exc.last, _Throttled)
            raise exc.last.error from None

    async def vet(self, url: str) -> None:
        """Raise :class:`~fathom.tools.ssrf.BlockedURLError` when ``url`` may not be read now (the
        check before a cache hit). A site reader's URL (github.com/…) is not fetched itself: its
        API requests are vetted as they are made, and the page is when it is read directly."""
        _, host, _ = split_url(url)
        if not any(reader.handles(host.lower()) for reader in self.sites):
            await self.fetcher.guard.check_url(url)

    def reads_itself(self, url: str) -> bool:
        """Whether ``url`` is read from the page itself, not through a site's API or Jina's reader
        (whose quotas and fees a speculative read must not spend)."""
        _, host, _ = split_url(url)
        return self.jina is None and not any(reader.handles(host.lower()) for reader in self.sites)

    async def _try(self, reader: Reader, url: str, failures: list[str]) -> Document | None:
        try:
            async with asyncio.timeout(reader.timeout_s):
                return await reader.read(url)
        except TimeoutError:
            failures.append(reader_failure(reader.name, f"timed out after {reader.timeout_s:g} s"))
        except ToolError as exc:
            failures.append(reader_failure(reader.name, str(exc)))
        except Exception as exc:  # a reader's bug must not cost the page its other readers
            log.exception("reader %s failed on %s", reader.name, url)
            failures.append(reader_failure(reader.name, f"{type(exc).__name__}: {exc}"))
        return None

    async def _try_archive(self, url: str, refusal: str, failures: list[str]) -> Document | None:
        assert self.archive is not None
        archive = self.archive
        try:
            async with asyncio.timeout(archive.timeout_s):
                return await archive.read(url, refusal)
        except TimeoutError:
            failures.append(reader_failure(archive.name, f"timed out after {archive.timeout_s:g} s"))
        except ToolError as exc:
            failures.append(reader_failure(archive.name, str(exc)))
        return None

    async def aclose(self) -> None:
        close = getattr(self.browser, "aclose", None)
        if close is not None:
            await close()


class _Throttled(Transient):
    def __init__(self, error: FetchError) -> None:
        super().__init__(str(error), retry_after=error.retry_after)
        self.error = error


def reader_failure(reader: str, reason: str) -> str:
    return f"{reader}: {reason}"


def _failure(primary: str, others: list[str], *, stage: str, lasting: bool = False) -> ReadFailure:
    """The page's own failure first, then each other reader's: "HTTP 403 Forbidden; github: …"."""
    return ReadFailure("; ".join([primary, *others]), stage=stage, lasting=lasting)
