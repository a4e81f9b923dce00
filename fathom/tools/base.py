"""Shared types of the research tools: search hits, tool outcomes and the backend interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from fathom.errors import ToolError

if TYPE_CHECKING:
    from fathom.tools.extract import Document

__all__ = ["CachedEvidence", "CachedPage", "FileIndex", "ReaderNotes", "SearchBackend", "SearchHit", "Source",
           "ToolCache", "ToolError", "ToolOutcome"]
FailureStage = Literal["fetch", "read"]


class SearchHit(TypedDict):
    title: str
    url: str
    snippet: str


class Source(TypedDict):
    """A URL the run retrieved, with its title (a page's own, else its search hit's)."""

    url: str
    title: str


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call hands back: the text the model reads, success, and the URLs it touched."""

    text: str
    ok: bool
    sources: list[Source] = field(default_factory=list)
    # Structure for protocols that lay results out in their own format (search hits with their
    # snippets, where each page read sits in ``text``): JSON primitives only, kept on the result.
    data: dict[str, Any] | None = None


class SearchBackend(Protocol):
    """A web (or local) search engine: ``search`` returns at most ``top_k`` hits, best first."""

    name: str

    async def search(self, query: str, top_k: int) -> list[SearchHit]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class CachedPage:
    """A page read before: its document, or the failure remembered for it (``stage`` + ``error``)."""

    document: Document | None
    stage: FailureStage | None = None
    error: str | None = None


@dataclass(frozen=True)
class CachedEvidence:
    text: str
    sources: list[Source]


class ToolCache(Protocol):
    """Searches, pages and evidence already paid for (the SQL one is ``fathom.store.cache``).

    A cache never raises into a tool call: when it cannot work it answers ``None`` (a miss).
    """

    async def get_search(self, backend: str, query: str, top_k: int) -> list[SearchHit] | None: ...

    async def put_search(self, backend: str, query: str, top_k: int, hits: list[SearchHit]) -> None: ...

    async def get_page(self, url: str) -> CachedPage | None: ...

    async def put_page(self, url: str, doc: Document, kind: str = "") -> None: ...

    async def put_page_failure(self, url: str, stage: FailureStage, error: str) -> None: ...

    async def get_evidence(self, url: str, goal: str, extractor: str) -> CachedEvidence | None: ...

    async def put_evidence(self, url: str, goal: str, extractor: str, text: str, sources: list[Source]) -> None: ...


class FileIndex(Protocol):
    """Indexed local files that ``query_url`` may read by their ``file://`` URL (and no others)."""

    async def read(self, url: str) -> Document: ...


@dataclass(frozen=True)
class ReaderNotes:
    """The sentences the model reads with a page or a failure; the wording is
    :data:`fathom.protocols.prompts.tools.READER_NOTES` (tools do not import prompts)."""

    archived: Callable[[str, str, str], str]  # (url, taken on, why the live page failed) -> note
    no_snapshot: str
    no_transcript: str
    arxiv_pdf: Callable[[str], str]  # (why the PDF failed) -> note
    browser_missing: str
