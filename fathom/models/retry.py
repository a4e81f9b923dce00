"""Retry plumbing shared by the model clients: backoff schedule and one-line error text."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

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

MAX_MESSAGE_CHARS = 400


def is_context_error(message: str) -> bool:
    """True when a server's error text says the prompt (plus completion) exceeds the context."""
    lowered = message.lower()
    return any(marker in lowered for marker in CONTEXT_MARKERS)


def one_line(text: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace and cap the length, so an error fits on one log or terminal line."""
    flat = re.sub(r"\s+", " ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def backoff_delay(attempt: int, base_s: float, cap_s: float = 30.0) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) x base x 2^attempt, capped.

    Jitter keeps many concurrent research runs from hammering a restarting server in lockstep.
    """
    return min(cap_s, base_s * (2**attempt)) * (0.5 + random.random())


async def sleep_backoff(attempt: int, base_s: float) -> None:
    """Sleep the backoff for the given (0-based) retry attempt; nothing when ``base_s`` is 0."""
    if base_s > 0:
        await asyncio.sleep(backoff_delay(attempt, base_s))


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
