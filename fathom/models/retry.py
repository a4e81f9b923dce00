"""What the model clients share: their use of the retry policy, and servers' error text in words."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fathom.errors import one_line
from fathom.models.base import ModelUnavailableError
from fathom.retry import RetriesExhausted, RetryPolicy, Transient, call_with_retries

T = TypeVar("T")

# Substrings (lower-cased) by which servers say "the prompt does not fit". SGLang's tokenizer
# manager raises the first two; its scheduler aborts with the third; the rest are what
# OpenAI, vLLM and llama.cpp say, so the chat client recognises them too.
CONTEXT_MARKERS: tuple[str, ...] = (
    "is longer than the model's context length",
    "exceeds the model's maximum context length",
    "exceeds the maximum allowed length",
    "maximum context length is",
    "context_length_exceeded",
    "exceeds the available context size",
)

# Statuses worth another try: the server is overloaded, restarting or rate limiting. Other 4xx
# are answers about the request itself, and repeating the same request cannot change them.
RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

MAX_BACKOFF_S = 30.0


def is_context_error(message: str) -> bool:
    """True when a server's error text says the prompt (plus completion) exceeds the context."""
    lowered = message.lower()
    return any(marker in lowered for marker in CONTEXT_MARKERS)


def is_context_overflow(status: int, message: str) -> bool:
    """True when an HTTP error answers "the prompt does not fit".

    SGLang and OpenAI-compatible servers say so with 400; a proxy or server may say 413 (payload
    too large). Either way it is never retried: the same prompt cannot fit on another try.
    """
    return status in (400, 413) and is_context_error(message)


class TransientModelError(Transient):
    """One attempt failed in a way another may fix; the message is the reason, for the log."""


def retry_policy(max_retries: int, backoff_s: float) -> RetryPolicy:
    """The shared policy (:mod:`fathom.retry`) with a model client's knobs: ``max_retries`` after
    the first attempt, the first wait ``backoff_s`` (doubling, jittered, at most 30 s)."""
    return RetryPolicy(attempts=max(0, int(max_retries)) + 1, base_delay_s=backoff_s, max_delay_s=MAX_BACKOFF_S)


async def call_model(
    op: Callable[[], Awaitable[T]], policy: RetryPolicy, *, where: str, label: str = "", logger: logging.Logger
) -> T:
    """Run ``op`` under ``policy``; when the retries are spent raise :class:`ModelUnavailableError`.

    ``where`` names the server in the error ("query LLM at …"); ``label`` (default ``where``)
    in the warning ``logger`` logs before each retry.
    """

    def log_retry(failure: Transient, attempt: int, _wait: float) -> None:
        logger.warning("%s: %s (attempt %d of %d, retrying)", label or where, failure, attempt, policy.attempts)

    try:
        return await call_with_retries(op, policy, on_retry=log_retry)
    except RetriesExhausted as gave_up:
        tries = f" after {gave_up.attempts} attempts" if gave_up.attempts > 1 else ""
        raise ModelUnavailableError(f"{where} is unreachable{tries}: {gave_up.last}") from None


def connect_reason(exc: BaseException) -> str:
    """Why a connection failed, in words: "connection refused" or the error on one line."""
    return "connection refused" if _refused(exc) else f"cannot connect ({one_line(exc, 160)})"


def _refused(exc: BaseException) -> bool:
    """Walk the cause chain for ECONNREFUSED (httpx only says "All connection attempts failed")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def error_message(body: Any) -> str:
    """Extract the human message from the error bodies SGLang, OpenAI and FastAPI send.

    Shapes: ``{"error": {"message": m}}``, ``{"error": m}``, ``{"message": m}`` (OpenAI-style
    ``{"object": "error", ...}``), ``{"detail": ...}``, or anything else (stringified).
    """
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return one_line(err["message"])
        if isinstance(err, str) and err:
            return one_line(err)
        for key in ("message", "detail"):
            if body.get(key):
                return one_line(body[key])
    if isinstance(body, str):
        return one_line(body) or "(empty body)"
    return one_line(body) if body else "(empty body)"
