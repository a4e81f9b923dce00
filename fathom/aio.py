"""``async with`` for everything that holds connections: one base class instead of a copy per class.

Imports nothing from Fathom, so every layer may use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Self, TypeVar

__all__ = ["AsyncClosing", "loop_is_own", "run_own_loop"]

T = TypeVar("T")

_OWN_LOOP: ContextVar[bool] = ContextVar("fathom_own_loop", default=False)


def run_own_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on an event loop that Fathom owns: nothing else shares it, so a
    short blocking call on it (a SQLite statement, see ``fathom/store/inline.py``) costs less
    than a hop to a worker thread. Fathom's commands run through this; a host's loop (an app
    embedding the graph, LangGraph's dev server, which forbids blocking calls) never is.

    The loop is uvloop's where it is installed (Linux and macOS): an eval keeps hundreds of
    requests and timers in flight on this one loop, and uvloop schedules them for less CPU
    (``bench/eval_throughput.py``).
    """
    import asyncio  # here: the CLI's help paths import this module and never need asyncio

    token = _OWN_LOOP.set(True)  # asyncio.run's task, and every task it starts, copies it
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main)
    finally:
        _OWN_LOOP.reset(token)


def _loop_factory() -> Callable[[], Any] | None:
    """uvloop's loop constructor, or None (asyncio's default loop) where it is not installed."""
    try:
        import uvloop
    except ImportError:  # Windows, or a platform without a wheel: asyncio's loop does the same work
        return None
    return uvloop.new_event_loop


def loop_is_own() -> bool:
    """Whether the running code is on a loop started by :func:`run_own_loop`."""
    return _OWN_LOOP.get()


class AsyncClosing(ABC):
    """Closed by :meth:`aclose`; ``async with obj:`` hands ``obj`` in and closes it on the way out."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the object holds (connection pools, clients)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
