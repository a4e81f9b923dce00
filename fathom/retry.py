"""The one retry policy of every outbound call: model servers and web-search services.

An attempt that fails in a way another attempt may fix (a refused or dropped connection, a
timeout, HTTP 5xx, 408 or 429) raises a :class:`Transient`; anything else (every other 4xx, a
malformed answer) propagates at once. :func:`call_with_retries` runs the attempts with
`tenacity <https://tenacity.readthedocs.io>`_: at most ``policy.attempts`` of them, separated by
exponential backoff with jitter, or by the wait the server asked for (``Retry-After``) when the
:class:`Transient` carries one. When it gives up it raises :class:`RetriesExhausted`, which each
layer words for its own reader.

Imports nothing from Fathom: the model clients and the research tools are independent layers,
and both use it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

__all__ = ["RetriesExhausted", "RetryPolicy", "Transient", "call_with_retries"]

T = TypeVar("T")


class Transient(Exception):
    """Raised by one attempt to ask for another; ``retry_after`` is the wait the server asked for."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """The attempts are over. ``last`` is the final :class:`Transient` and ``attempts`` how many ran.

    ``asked_wait`` is set when the retries stopped early because the server asked (``Retry-After``)
    to wait longer than ``policy.max_retry_after_s``.
    """

    def __init__(self, last: Transient, attempts: int, asked_wait: float | None = None) -> None:
        super().__init__(str(last))
        self.last = last
        self.attempts = attempts
        self.asked_wait = asked_wait


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. ``sleep`` is injectable so tests need not wait."""

    attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 20.0  # a server asking for a longer wait ends the retries at once
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff(self, retry: int) -> float:
        """Exponential backoff with jitter before retry number ``retry`` (0-based), capped.

        The jitter (up to +25 %) keeps concurrent runs from hammering a restarting server in
        lockstep, and each wait is still longer than the one before.
        """
        return min(self.max_delay_s, self.base_delay_s * 2**retry) * (1 + 0.25 * random.random())


OnRetry = Callable[[Transient, int, float], None]
"""Called before each wait with the failure, the (1-based) attempt that failed and the wait."""


async def call_with_retries(
    op: Callable[[], Awaitable[T]], policy: RetryPolicy, *, on_retry: OnRetry | None = None
) -> T:
    """Run ``op``, retrying it on :class:`Transient` as ``policy`` says.

    Raises :class:`RetriesExhausted` (from None) when it gives up; other exceptions of ``op``
    propagate unchanged.
    """
    attempts = max(1, policy.attempts)

    def wait(state: tenacity.RetryCallState) -> float:
        asked = _failure(state).retry_after
        return max(0.0, asked) if asked is not None else policy.backoff(state.attempt_number - 1)

    def asks_too_long(state: tenacity.RetryCallState) -> bool:
        asked = _failure(state).retry_after
        return asked is not None and asked > policy.max_retry_after_s

    def stop(state: tenacity.RetryCallState) -> bool:
        return state.attempt_number >= attempts or asks_too_long(state)

    def give_up(state: tenacity.RetryCallState) -> T:
        last = _failure(state)
        asked = last.retry_after if state.attempt_number < attempts else None
        raise RetriesExhausted(last, state.attempt_number, asked) from None

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            on_retry(_failure(state), state.attempt_number, state.upcoming_sleep)

    async def attempt() -> T:  # a coroutine function, whatever kind of callable ``op`` is
        return await op()

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(Transient),
        wait=wait,
        stop=stop,
        sleep=lambda seconds: policy.sleep(float(seconds)),
        before_sleep=before_sleep,
        retry_error_callback=give_up,
    )
    return await retrying(attempt)


def _failure(state: tenacity.RetryCallState) -> Transient:
    exc = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(exc, Transient)  # only Transient failures are retried
    return exc
