"""What every HTTP search backend shares: bounded retries with backoff, and HTTP errors in words.

Transient failures (429, 5xx, timeouts, refused connections) raise :class:`RetryableError` and are
retried by :func:`with_retries` with the shared policy of :mod:`fathom.retry`, honouring
``Retry-After`` up to a cap; everything else raises a plain :class:`~fathom.tools.base.ToolError`
at once. Messages name the service and, for key
problems, the environment variable to fix.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from fathom.errors import one_line
from fathom.retry import RetriesExhausted, RetryPolicy, Transient, call_with_retries
from fathom.tls import ssl_context
from fathom.tools.base import ToolError

__all__ = [
    "RetryPolicy",
    "RetryableError",
    "default_client",
    "error_detail",
    "parse_retry_after",
    "raise_for_status",
    "request_json",
    "with_retries",
]

T = TypeVar("T")


class RetryableError(ToolError, Transient):
    """A failure worth retrying; ``retry_after`` is the wait the server asked for, if it did."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        ToolError.__init__(self, message)
        self.retry_after = retry_after


async def with_retries(op: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``op``; retry it on :class:`RetryableError` up to ``policy.attempts`` times in all."""
    try:
        return await call_with_retries(op, policy)
    except RetriesExhausted as gave_up:
        if gave_up.asked_wait is not None:
            raise ToolError(
                f"{gave_up.last}; the service asks to wait {gave_up.asked_wait:.0f} s, longer than the "
                f"{policy.max_retry_after_s:.0f} s we wait"
            ) from None
        suffix = f" (gave up after {gave_up.attempts} attempts)" if gave_up.attempts > 1 else ""
        raise ToolError(f"{gave_up.last}{suffix}") from None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_detail(response: httpx.Response) -> str:
    """A short one-line reason from an error body (``message``/``error``/``detail`` or the text)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    for _ in range(3):  # unwrap {"detail": {"error": "..."}} and friends
        if isinstance(body, dict):
            inner = next((body[k] for k in ("message", "error", "detail") if body.get(k)), None)
            if inner is None:
                break
            body = inner
    text = body if isinstance(body, str) else json.dumps(body)[:200] if body else ""
    text = one_line(text, 200)
    return f": {text}" if text else ""


def raise_for_status(response: httpx.Response, *, service: str, key_env: str | None = None) -> None:
    """Raise the right error for a non-2xx response (retryable for 429 and 5xx)."""
    code = response.status_code
    if code < 400:
        return
    detail = error_detail(response)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code in (401, 403) and key_env:
        raise ToolError(f"{service} rejected the API key (HTTP {code}{detail}); check {key_env}")
    if code == 429:
        raise RetryableError(f"{service} rate limit or quota exceeded (HTTP 429{detail})", retry_after=retry_after)
    if code >= 500:
        raise RetryableError(f"{service} server error (HTTP {code}{detail})", retry_after=retry_after)
    raise ToolError(f"{service} refused the request (HTTP {code}{detail})")


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    key_env: str | None = None,
    **kwargs: Any,
) -> Any:
    """One request whose answer must be JSON; errors are mapped as described in the module docstring."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise RetryableError(f"{service} did not answer in time") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"could not reach {service} at {url} ({one_line(exc, 200) or type(exc).__name__})") from None
    raise_for_status(response, service=service, key_env=key_env)
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise ToolError(f"{service} returned malformed JSON (HTTP {response.status_code}, {kind})") from None


def default_client(timeout_s: float, **kwargs: Any) -> httpx.AsyncClient:
    """The httpx client search backends use when none is given: bounded connect and read times."""
    kwargs.setdefault("verify", ssl_context())  # one per process (see fathom.tls)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)), **kwargs)
