"""SearXNG through its JSON API: ``GET {base}/search?q=…&format=json`` (``json`` must be enabled
in the instance's ``search.formats``)."""

from __future__ import annotations

import functools

import httpx

from fathom.tools.base import SearchHit, ToolError
from fathom.tools.search.http import (
    RetryPolicy,
    default_client,
    request_json,
    with_retries,
)
from fathom.tools.search.results import dedupe_hits, make_hit

MAX_PAGES = 3  # an instance gives ~10-20 hits a page; more pages only when top_k asks for them


class SearxngBackend:
    """A SearXNG instance (self-hosted, no key)."""

    name = "searxng"

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy = RetryPolicy(),
        language: str | None = None,
        categories: str = "general",
    ) -> None:
        if not base_url:
            raise ToolError("the searxng backend needs a URL: set SEARXNG_URL")
        self.base_url = base_url.rstrip("/")
        self._client = client or default_client(timeout_s)
        self._owns_client = client is None
        self._retry = retry
        self._params = {"format": "json", "categories": categories}
        if language:
            self._params["language"] = language

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        hits: list[SearchHit] = []
        for page in range(1, MAX_PAGES + 1):
            try:
                results = await with_retries(functools.partial(self._page, query, page), self._retry)
            except ToolError:
                if page == 1:
                    raise
                break  # a later page failing still leaves the hits we have
            before = len(hits)
            hits = dedupe_hits(hits + results, top_k)
            if len(hits) >= top_k or len(hits) == before:
                break
        return hits

    async def _page(self, query: str, page: int) -> list[SearchHit]:
        data = await request_json(
            self._client, "GET", f"{self.base_url}/search", service="SearXNG",
            params={"q": query, "pageno": page, **self._params},
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ToolError("SearXNG returned JSON without a results list")
        return [make_hit(r.get("title"), r.get("url"), r.get("content")) for r in results if isinstance(r, dict)]

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
