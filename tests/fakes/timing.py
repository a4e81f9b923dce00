"""Fakes timed where they serve: every HTTP request becomes an interval (kind, start, end).

The benches divide by these, not by the delays they configure: a model turn "held 1 s" costs
the server its parsing and answering too, as a real server's would (the time a fake serves a
request is the model's or the tool's time; the rest is the client's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.search_apis import FakeSearxng
from tests.fakes.sglang import FakeSGLang

Interval = tuple[str, float, float]  # kind (model, judge, page, search, decode), start, end (time.monotonic)


def timed(app: Any, kind_of: Callable[[dict[str, Any]], str], sink: list[Interval], lock: threading.Lock) -> Any:
    """``app`` wrapped so that every HTTP request it serves is recorded as an interval."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        start = time.monotonic()
        try:
            await app(scope, receive, send)
        finally:
            with lock:
                sink.append((kind_of(scope), start, time.monotonic()))

    return asgi


def served_seconds(intervals: list[Interval]) -> dict[str, float]:
    """Seconds served per kind, summed over requests (concurrent requests each count)."""
    totals: dict[str, float] = {}
    for kind, start, end in intervals:
        totals[kind] = totals.get(kind, 0.0) + end - start
    return totals


class TimedModel(FakeSGLang):
    """The fake SGLang, its requests recorded as ``judge`` (chat route) or ``model`` intervals."""

    def __init__(self, sink: list[Interval], lock: threading.Lock, **kwargs: Any) -> None:
        self.sink, self.sink_lock = sink, lock
        super().__init__(**kwargs)

    def _app(self) -> Any:
        kind = lambda scope: "judge" if scope["path"] == "/v1/chat/completions" else "model"  # noqa: E731
        return timed(super()._app(), kind, self.sink, self.sink_lock)

    def _model_seconds(self, uncached_tokens: int, completion_tokens: int) -> float:
        """Also record the modelled decoding as a ``decode`` interval (within its request's)."""
        if self.decode_tokens_per_s:
            now = time.monotonic()
            with self.sink_lock:
                self.sink.append(("decode", now, now + completion_tokens / self.decode_tokens_per_s))
        return super()._model_seconds(uncached_tokens, completion_tokens)


class TimedSearxng(FakeSearxng):
    """The fake SearXNG, its requests recorded as ``search`` intervals."""

    def __init__(self, sink: list[Interval], lock: threading.Lock, results: list[dict[str, str]] | None = None,
                 **kwargs: Any) -> None:
        self.sink, self.sink_lock = sink, lock
        super().__init__(results, **kwargs)

    def _counting(self, app: Any) -> Any:
        return timed(super()._counting(app), lambda scope: "search", self.sink, self.sink_lock)
