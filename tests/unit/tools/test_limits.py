"""Per-backend search limits: a concurrency cap and a token-bucket rate, shared across toolboxes.

Waits are checked on an injected clock, never measured."""

from __future__ import annotations

import asyncio

import pytest

from fathom.app.services import make_search_backend, toolbox
from fathom.settings import Settings
from fathom.tools.base import SearchHit
from fathom.tools.search.limits import (
    DEFAULT_LIMITS,
    LimitedBackend,
    Limiter,
    TokenBucket,
    limit,
)
from tests.fakes.search_apis import FakeSearxng


class FakeClock:
    """A clock whose sleep advances it and records the wait."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


async def test_token_bucket_spaces_acquisitions_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        await bucket.acquire()
    assert clock.waits == [0.5, 0.5, 0.5]  # three at once, then one every half second
    clock.now += 10  # idle time refills the bucket, but never beyond the burst
    for _ in range(4):
        await bucket.acquire()
    assert clock.waits == [0.5, 0.5, 0.5, 0.5]


async def test_concurrent_waiters_queue_in_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def take(n: int) -> None:
        await bucket.acquire()
        order.append(n)

    await asyncio.gather(*(take(n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4] and clock.waits == [1.0] * 4


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, burst=0.5)


class GatedBackend:
    """Searches block until released; records how many ran at once."""

    name = "gated"

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.gate = asyncio.Event()

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.gate.wait()
        self.running -= 1
        return [SearchHit(title=query, url=f"https://x.example/{query}", snippet="")]

    async def aclose(self) -> None:
        return None


async def test_concurrency_cap_holds_across_toolboxes() -> None:
    inner = GatedBackend()
    limiter = Limiter(2, None)
    first, second = LimitedBackend(inner, limiter), LimitedBackend(inner, limiter)
    tasks = [asyncio.create_task(b.search(f"q{n}", 1)) for n in range(4) for b in (first, second)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert inner.running == 2  # six wait for a slot
    inner.gate.set()
    results = await asyncio.gather(*tasks)
    assert inner.most == 2 and len(results) == 8 and first.name == "gated"


async def test_rate_limit_applies_inside_the_slot() -> None:
    clock = FakeClock()
    inner = GatedBackend()
    inner.gate.set()
    limited = LimitedBackend(inner, Limiter(4, 5.0, clock=clock, sleep=clock.sleep))
    await asyncio.gather(*(limited.search(f"q{n}", 1) for n in range(3)))
    assert clock.waits == [0.2, 0.2]


async def test_limiters_are_shared_per_backend_and_endpoint() -> None:
    a, b = GatedBackend(), GatedBackend()
    assert limit(a, "http://one").limiter is limit(b, "http://one").limiter
    assert limit(a, "http://one").limiter is not limit(a, "http://two").limiter
    assert limit(a, "http://one", concurrency=9).limiter.concurrency == 9


async def test_settings_choose_the_limits(searxng: FakeSearxng) -> None:
    default = make_search_backend(Settings(searxng_url=searxng.url))
    tuned = make_search_backend(Settings(searxng_url=searxng.url, search_concurrency=1, search_rate_per_s=0.5))
    try:
        assert isinstance(default, LimitedBackend) and isinstance(tuned, LimitedBackend)
        assert (default.limiter.concurrency, default.limiter.rate_per_s) == DEFAULT_LIMITS["searxng"]
        assert (tuned.limiter.concurrency, tuned.limiter.rate_per_s) == (1, 0.5)
    finally:
        await default.aclose()
        await tuned.aclose()
    env = Settings.load(environ={"FATHOM_SEARCH_CONCURRENCY": "3", "FATHOM_SEARCH_RATE": "2.5"})
    assert (env.search_concurrency, env.search_rate_per_s) == (3, 2.5)


async def test_a_turn_of_parallel_searches_respects_the_cap(searxng: FakeSearxng) -> None:
    settings = Settings(searxng_url=searxng.url, search_concurrency=1, search_rate_per_s=1000.0)
    async with toolbox(settings) as tools:
        outcomes = await asyncio.gather(*(tools.search_urls(f"kestrel {n}") for n in range(5)))
    assert all(o.ok for o in outcomes)
    assert searxng.max_in_flight == 1
