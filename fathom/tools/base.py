"""Shared types of the research tools: search hits, tool outcomes and the backend interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypedDict


class SearchHit(TypedDict):
    title: str
    url: str
    snippet: str


class Source(TypedDict):
    url: str
    title: str


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call hands back: the text the model reads, success, and the URLs it touched."""

    text: str
    ok: bool
    sources: list[Source] = field(default_factory=list)


class ToolError(RuntimeError):
    """A tool failed; the message is written for the model to read (and the user to see)."""


class SearchBackend(Protocol):
    """A web (or local) search engine: ``search`` returns at most ``top_k`` hits, best first."""

    name: str

    async def search(self, query: str, top_k: int) -> list[SearchHit]: ...

    async def aclose(self) -> None: ...
