"""What the nodes are handed: plain configuration and the interfaces of the things they call.

Nodes never build clients or read settings; the application layer (:mod:`fathom.app.services`)
builds a :class:`Services` from :class:`~fathom.settings.Settings` and the graph hands it to
every node. Tests and embedders may hand their own implementations of these interfaces.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fathom.aio import AsyncClosing
from fathom.models.base import ChatResult, Generation
from fathom.protocols.base import SearchProtocol
from fathom.tools.base import ToolOutcome


@dataclass(frozen=True)
class ResearchConfig:
    """The knobs the nodes read (a plain copy of the matching settings; see ``Settings``)."""

    max_rounds: int = 64
    max_calls_per_turn: int = 8
    max_wall_seconds: float = 3600.0
    context_tokens: int = 40960
    answer_reserve_tokens: int = 2048
    context_strategy: str = "fold"  # "fold": fold old tool results near the limit; "answer": force the answer
    max_new_tokens_per_turn: int = 8192
    search_top_k: int = 10
    verify: str = "on"  # "off", "on" (verbatim in evidence, else the judge) or "strict" (always the judge)
    max_verify_loops: int = 2
    language: str = "English"
    synth_prompt: str = ""  # the synthesizer's system prompt text ("": ours)
    synth_lead_in: str = ""  # the first sentence of its user turn ("": ours; the trained one with --synth-prompt trained)
    synth_context_tokens: int = 131072
    synth_max_new_tokens: int = 10000
    synth_temperature: float = 0.4
    synth_continuations: int = 2
    repetition_penalty: float = 1.05
    # The longest a step between two search turns can take (a tool call or a judge call): a
    # longer gap is a pause (a crash, a plan review), which the wall-clock budget does not count.
    max_step_seconds: float = 600.0


class Tools(Protocol):
    """The research tools the search model calls."""

    async def search_urls(self, query: str, top_k: int | None = None) -> ToolOutcome: ...

    async def query_url(self, url: str, goal: str) -> ToolOutcome: ...

    # For the baseline protocols (fathom/protocols/baselines/): whole pages, not evidence.
    async def read_page(self, url: str, max_chars: int) -> ToolOutcome: ...

    async def search_pages(
        self, query: str, top_k: int | None = None, *, read: int = 3, want: int = 0, host: str = "",
        max_chars: int = 35000,
    ) -> ToolOutcome: ...


class Synthesizer(Protocol):
    """Fathom-Synthesizer: raw-prompt completion with the server's token counts."""

    async def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = ...,
        repetition_penalty: float = ...,
        stop: list[str] | None = None,
    ) -> Generation: ...

    async def context_length(self) -> int | None: ...


class Judge(Protocol):
    """A chat model that decides whether the evidence supports an answer."""

    async def complete(
        self, messages: list[dict[str, Any]], *, temperature: float = ..., max_tokens: int = ...
    ) -> ChatResult: ...


class Prefetch(Protocol):
    """Pages read ahead while the model writes its turn (:mod:`fathom.tools.prefetch`); ``scope``
    is the run (its thread id)."""

    def start(self, scope: str, urls: Sequence[str]) -> Any: ...

    def settle(self, scope: str, keep: Collection[str] = ()) -> None: ...

    async def finish(self, scope: str) -> None: ...


Clock = Callable[[], float]  # epoch seconds


@dataclass
class Services(AsyncClosing):
    """Everything the nodes act through. ``closers`` run on :meth:`aclose` (what was built for it).
    ``prefetch`` (optional) reads the top results of a search ahead for ``tools.query_url``."""

    config: ResearchConfig
    protocol: SearchProtocol
    tools: Tools
    synth: Synthesizer | None = None
    judge: Judge | None = None
    clock: Clock = time.time
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    prefetch: Prefetch | None = None

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()
