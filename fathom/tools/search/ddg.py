"""DuckDuckGo (and the other engines ddgs meta-searches) through the optional ``ddgs`` package.

ddgs is synchronous, so each search runs in a worker thread. A search that outlives the tool's
deadline is abandoned, not killed: ddgs' own ``timeout`` bounds how long the thread lingers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fathom.errors import one_line
from fathom.tools.base import SearchHit, ToolError
from fathom.tools.search.http import RetryableError, RetryPolicy, with_retries
from fathom.tools.search.results import dedupe_hits, make_hit

INSTALL_HINT = (
    "DuckDuckGo search needs the ddgs package: pip install ddgs "
    "(or configure another backend: TAVILY_API_KEY, SERPER_API_KEY or SEARXNG_URL)"
)


def _load_ddgs() -> Callable[..., Any]:
    try:
        from ddgs import DDGS  # type: ignore[import-not-found]
    except ImportError:
        raise ToolError(INSTALL_HINT) from None
    return DDGS


class DdgBackend:
    """Key-free web search. ``ddgs_factory(timeout=…)`` makes a ``DDGS``-like object (injectable for tests)."""

    name = "ddg"

    def __init__(
        self,
        *,
        ddgs_factory: Callable[..., Any] | None = None,
        region: str = "us-en",
        timeout_s: float = 10.0,
        retry: RetryPolicy = RetryPolicy(attempts=2),
    ) -> None:
        self._factory = ddgs_factory or _load_ddgs()  # fails at construction, not at first search
        self.region = region
        self.timeout_s = timeout_s
        self._retry = retry

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        async def once() -> list[SearchHit]:
            return await asyncio.to_thread(self._search_sync, query, top_k)

        return dedupe_hits(await with_retries(once, self._retry), top_k)

    def _search_sync(self, query: str, top_k: int) -> list[SearchHit]:
        try:
            with self._factory(timeout=max(1, int(self.timeout_s))) as ddgs:
                rows = ddgs.text(query, region=self.region, max_results=top_k) or []
        except Exception as exc:
            # ddgs may be absent at import time, so its exception classes are matched by name.
            kind = type(exc).__name__
            message = one_line(exc, 200)
            if kind == "RatelimitException":
                raise RetryableError(f"DuckDuckGo rate limit exceeded ({message})") from None
            if kind == "TimeoutException":
                raise RetryableError("DuckDuckGo did not answer in time") from None
            if "no results" in message.lower():
                return []
            raise ToolError(f"DuckDuckGo search failed ({kind}: {message})") from None
        return [make_hit(r.get("title"), r.get("href"), r.get("body")) for r in rows if isinstance(r, dict)]

    async def aclose(self) -> None:
        return None
