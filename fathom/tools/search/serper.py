"""Serper (Google results): ``POST {base}/search`` with ``X-API-KEY``.

The body always names ``num``, ``gl`` and ``hl`` (upstream sent only ``q``, so results depended
on the server's locale and ``top_k > 10`` was ignored: bug T11).
"""

from __future__ import annotations

import httpx

from fathom.tools.base import SearchHit, ToolError
from fathom.tools.search.http import (
    RetryPolicy,
    default_client,
    request_json,
    with_retries,
)
from fathom.tools.search.results import dedupe_hits, make_hit

KEY_ENV = "SERPER_API_KEY"


class SerperBackend:
    """google.serper.dev (or a compatible server at ``base_url``)."""

    name = "serper"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://google.serper.dev",
        gl: str = "us",
        hl: str = "en",
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        if not api_key:
            raise ToolError(f"the serper backend needs an API key: set {KEY_ENV}")
        self.base_url = base_url.rstrip("/")
        self.gl, self.hl = gl, hl
        self._headers = {"X-API-KEY": api_key, "Content-Type": "application/json"}
        self._client = client or default_client(timeout_s)
        self._owns_client = client is None
        self._retry = retry

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        # Serper pages in tens; asking for fewer still costs one page.
        body = {"q": query, "num": max(10, min(100, top_k)), "gl": self.gl, "hl": self.hl}

        async def once() -> list[SearchHit]:
            data = await request_json(
                self._client, "POST", f"{self.base_url}/search", service="Serper",
                key_env=KEY_ENV, headers=self._headers, json=body,
            )
            organic = data.get("organic", []) if isinstance(data, dict) else None
            if not isinstance(organic, list):
                raise ToolError("Serper returned JSON without an organic results list")
            return [make_hit(r.get("title"), r.get("link"), r.get("snippet")) for r in organic if isinstance(r, dict)]

        return dedupe_hits(await with_retries(once, self._retry), top_k)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
