"""Per-backend limits on searches: how many run at once, and how many start per second.

A research turn fans out up to eight calls and an evaluation runs many questions at once; without
limits a burst of searches earns HTTP 429 from an API (or a block from DuckDuckGo). Limits are
shared by every toolbox of a process that uses the same backend and endpoint, on one event loop
(asyncio primitives belong to a loop), so concurrent runs share one budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fathom.tools.base import SearchBackend, SearchHit

# backend -> (searches at once, searches started per second; None: unlimited)
DEFAULT_LIMITS: dict[str, tuple[int, float | None]] = {
    "ddg": (2, 1.0),  # scraped, and quick to block bursts
    "searxng": (4, 5.0),  # usually self-hosted, fanning out to engines that rate-limit it
    "serper": (8, 10.0),
    "tavily": (8, 10.0),
    "local": (16, None),  # the database is the only limit
}
FALLBACK_LIMITS: tuple[int, float | None] = (4, 5.0)


class TokenBucket:
    """At most ``rate_per_s`` acquisitions a second on average, ``burst`` at once; waiters queue FIFO.

    ``clock`` and ``sleep`` are injectable, so tests can check the waits without waiting.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._updated = clock()
        self._lock = asyncio.Lock()  # one waiter at a time: the queue is the lock's FIFO

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate_per_s)


class Limiter:
    """A concurrency cap and an optional token bucket, taken together by :meth:`slot`."""

    def __init__(self, concurrency: int, rate_per_s: float | None, **bucket_options: Any) -> None:
        self.concurrency = concurrency
        self.rate_per_s = rate_per_s
        self._slots = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(rate_per_s, **bucket_options) if rate_per_s else None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            if self._bucket is not None:
                await self._bucket.acquire()
            yield


class LimitedBackend:
    """A :class:`SearchBackend` whose searches wait for a :class:`Limiter` slot first.

    Other attributes (``name``, a local backend's ``corpus``) are the wrapped backend's.
    """

    def __init__(self, backend: SearchBackend, limiter: Limiter) -> None:
        self.backend = backend
        self.limiter = limiter
        self.name = backend.name

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        async with self.limiter.slot():
            return await self.backend.search(query, top_k)

    async def aclose(self) -> None:
        await self.backend.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Limiter]] = (
    weakref.WeakKeyDictionary()
)


def shared_limiter(key: str, concurrency: int, rate_per_s: float | None) -> Limiter:
    """The process's limiter for ``key`` (backend and endpoint) on the running loop, made on first use.

    Outside a running loop (a toolbox built before ``asyncio.run``) the limiter is private.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return Limiter(concurrency, rate_per_s)
    per_loop = _shared.setdefault(loop, {})
    return per_loop.setdefault((key, concurrency, rate_per_s), Limiter(concurrency, rate_per_s))


def limit(backend: SearchBackend, endpoint: str = "", *, concurrency: int | None = None,
          rate_per_s: float | None = None) -> LimitedBackend:
    """``backend`` behind the shared limiter of its name and ``endpoint`` (defaults per backend)."""
    default_concurrency, default_rate = DEFAULT_LIMITS.get(backend.name, FALLBACK_LIMITS)
    limiter = shared_limiter(
        f"{backend.name} {endpoint}", concurrency or default_concurrency, rate_per_s or default_rate
    )
    return LimitedBackend(backend, limiter)
