"""Tavily through tavily-python's ``AsyncTavilyClient``, its errors mapped to clear messages.

We hand the client our own httpx client: it carries our timeouts and ``base_url`` (``tavily_url``),
and a response hook that remembers ``Retry-After``, which tavily-python's 429 exception drops.
"""

from __future__ import annotations

import contextvars

import httpx

from fathom.errors import one_line
from fathom.tools.base import SearchHit, ToolError
from fathom.tools.search.http import (
    RetryableError,
    RetryPolicy,
    default_client,
    error_detail,
    parse_retry_after,
    raise_for_status,
    with_retries,
)
from fathom.tools.search.results import dedupe_hits, make_hit

KEY_ENV = "TAVILY_API_KEY"
DEFAULT_URL = "https://api.tavily.com"
MAX_RESULTS = 20  # Tavily's own limit per search

# Set per search call; the response hook runs in the same task and fills it in.
_retry_after: contextvars.ContextVar[dict[str, float | None] | None] = contextvars.ContextVar(
    "tavily_retry_after", default=None
)


async def _remember_retry_after(response: httpx.Response) -> None:
    box = _retry_after.get()
    if box is not None:
        box["retry_after"] = parse_retry_after(response.headers.get("retry-after"))


class TavilyBackend:
    """api.tavily.com (or a compatible server at ``base_url``)."""

    name = "tavily"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy = RetryPolicy(),
        search_depth: str = "basic",
    ) -> None:
        if not api_key:
            # tavily-python would silently switch to keyless mode: fail loudly instead.
            raise ToolError(f"the tavily backend needs an API key: set {KEY_ENV}")
        self.base_url = (base_url or DEFAULT_URL).rstrip("/")
        self.timeout_s = timeout_s
        self.search_depth = search_depth
        self._retry = retry
        self._http = default_client(
            timeout_s, base_url=self.base_url, event_hooks={"response": [_remember_retry_after]}
        )
        from tavily import (
            AsyncTavilyClient,  # imported on use: it pulls in requests, a slow import
        )

        self._client = AsyncTavilyClient(api_key=api_key, api_base_url=self.base_url, client=self._http)

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        async def once() -> list[SearchHit]:
            box: dict[str, float | None] = {"retry_after": None}
            token = _retry_after.set(box)
            try:
                data = await self._client.search(
                    query, max_results=min(top_k, MAX_RESULTS), search_depth=self.search_depth,
                    timeout=self.timeout_s,
                )
            except Exception as exc:
                raise _map_error(exc, box["retry_after"]) from None
            finally:
                _retry_after.reset(token)
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list):
                raise ToolError("Tavily returned JSON without a results list")
            return [make_hit(r.get("title"), r.get("url"), r.get("content")) for r in results if isinstance(r, dict)]

        return dedupe_hits(await with_retries(once, self._retry), top_k)

    async def aclose(self) -> None:
        await self._http.aclose()


def _map_error(exc: Exception, retry_after: float | None) -> Exception:
    from tavily import errors as tavily_errors

    detail = one_line(exc, 200)
    detail = f": {detail}" if detail else ""
    if isinstance(exc, tavily_errors.InvalidAPIKeyError):
        return ToolError(f"Tavily rejected the API key (HTTP 401{detail}); check {KEY_ENV}")
    if isinstance(exc, tavily_errors.UsageLimitExceededError):
        wait = getattr(exc, "retry_after_seconds", None)
        return RetryableError(
            f"Tavily rate limit or quota exceeded (HTTP 429{detail})",
            retry_after=float(wait) if wait is not None else retry_after,
        )
    if isinstance(exc, tavily_errors.ForbiddenError):
        return ToolError(f"Tavily refused the request: plan limit or key not allowed (HTTP 403/432/433{detail}); check {KEY_ENV}")
    if isinstance(exc, tavily_errors.BadRequestError):
        return ToolError(f"Tavily rejected the query (HTTP 400{detail})")
    if isinstance(exc, (tavily_errors.TimeoutError, httpx.TimeoutException)):
        return RetryableError("Tavily did not answer in time")
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            raise_for_status(exc.response, service="Tavily", key_env=KEY_ENV)
        except ToolError as mapped:
            return mapped
        return ToolError(f"Tavily returned HTTP {exc.response.status_code}{error_detail(exc.response)}")
    if isinstance(exc, httpx.TransportError):
        return RetryableError(f"could not reach Tavily ({one_line(exc, 200) or type(exc).__name__})")
    if isinstance(exc, ValueError):  # json.JSONDecodeError from a 200 with a broken body
        return ToolError("Tavily returned malformed JSON")
    return ToolError(f"Tavily search failed ({type(exc).__name__}{detail})")
