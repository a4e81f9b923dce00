"""Tell a busy model server from a hung one, for every HTTP model client.

A server can accept a connection and then say nothing: the request would wait out the whole
request budget (600 s), and each retry as long again. :class:`SilenceWatch` watches a client's
requests instead: once the server has been silent (no answer to any request of the client) for
half of ``answer_timeout_s`` it asks a cheap probe (SGLang's ``GET /health``, an
OpenAI-compatible server's ``GET /v1/models``); when neither the request nor the probe got an
answer for ``answer_timeout_s``, the request is given up at once with
:class:`~fathom.models.base.ModelNotAnsweringError`, which the clients never retry: the run stops
``interrupted`` and resumes later. A server that answers its probe is busy, not hung: its request
may take the whole budget. Meanwhile a ``model_wait`` progress event goes out every quarter of
``answer_timeout_s`` (at most every 15 s) on LangGraph's custom stream, for the people watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fathom.models.base import ModelNotAnsweringError

T = TypeVar("T")

ANSWER_TIMEOUT_S = 60.0  # a server silent this long, its probe included, is not answering
WAIT_NOTICE_EVERY_S = 15.0  # the most seconds between two "still waiting" progress events

Probe = Callable[[float], Awaitable[bool]]
"""Ask the server once, within the seconds given, whether it lives: True when it answered."""


class SilenceWatch:
    """One server's silence, shared by all requests of one client (and one probe at a time).

    ``name`` and ``url`` label events; ``where`` starts the error message ("search model server
    at …"); ``probe_what`` names the probe in it ("GET /health").
    """

    def __init__(self, *, name: str, url: str, where: str, answer_timeout_s: float, probe: Probe,
                 probe_what: str) -> None:
        self.name, self.url, self.where = name, url, where
        self.answer_timeout_s = float(answer_timeout_s)
        self.probe_what = probe_what
        self._probe_fn = probe
        self._last_sign = -math.inf  # loop time of the server's latest answer (any request or probe)
        self._probe: asyncio.Task[None] | None = None

    def heard(self) -> None:
        """The server answered something just now."""
        self._last_sign = asyncio.get_running_loop().time()

    async def wait(self, request: Awaitable[T], *, what: str) -> T:
        """Await ``request`` (``what`` names it: "POST /generate"), sending progress events while it
        waits; its result or its own exception comes back unchanged.

        Raises:
            ModelNotAnsweringError: the server was silent for ``answer_timeout_s``, probe included
                (the request is cancelled).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.ensure_future(request)
        tick = min(WAIT_NOTICE_EVERY_S, self.answer_timeout_s / 4)
        try:
            while True:
                await asyncio.wait((task,), timeout=tick)
                if task.done():
                    result = task.result()
                    self._last_sign = loop.time()
                    return result
                now = loop.time()
                silent = now - max(started, self._last_sign)
                if silent >= self.answer_timeout_s - 1e-3:
                    asked = what if what == self.probe_what else f"{what} nor to {self.probe_what}"
                    raise ModelNotAnsweringError(
                        f"{self.where} is not answering: no answer to {asked} in {self.answer_timeout_s:g} s "
                        "(FATHOM_MODEL_ANSWER_TIMEOUT); restart it or point the run at a server that answers"
                    )
                if silent >= self.answer_timeout_s / 2 - 1e-3 and (self._probe is None or self._probe.done()):
                    self._probe = asyncio.ensure_future(self._check_alive(self.answer_timeout_s / 2))
                notify_waiting(model=self.name, url=self.url, path=what.split(" ")[-1], waited_s=round(now - started, 1),
                               silent_s=round(silent, 1), answer_timeout_s=self.answer_timeout_s)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def aclose(self) -> None:
        """Stop a probe still in flight (before its client's connections close)."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(BaseException):
                await self._probe

    async def _check_alive(self, timeout_s: float) -> None:
        try:
            alive = await self._probe_fn(timeout_s)
        except Exception:  # noqa: BLE001  # any failure (a closed client too) is no sign of life
            return
        if alive:
            self.heard()


def notify_waiting(**data: Any) -> None:
    """Send a ``model_wait`` event to whoever streams the graph run this request belongs to
    (LangGraph's custom stream; the CLI words it). Outside a graph run: nothing."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except (ImportError, RuntimeError):
        return
    writer({"event": "model_wait", **data})
