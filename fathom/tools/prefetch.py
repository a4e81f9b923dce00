"""Speculative reads: the top results of a search, read while the model writes its next turn.

Once a ``search_urls`` result is in, the first few result pages are read in the background
(fetch and text extraction: the slow part, and the part that needs no goal). A ``query_url`` of
one of them then takes the page from here, waiting for a read still in flight rather than
fetching the page a second time. What is read ahead is a cache, never state: a run that
resumes without it reads the same pages itself, through the same readers.

Reads are grouped by run (``scope``, the thread id). A run's next search results cancel what its
earlier ones started; once the model's turn is written (:meth:`Prefetcher.settle`) only the pages
it asks for are kept, so a turn that answers leaves nothing running, and :meth:`Prefetcher.finish`
ends a run's reads for good. Everything is bounded: the
first ``pages`` results of a search, ``max_in_flight`` reads at once over all runs, ``max_bytes``
of page text held (UTF-8) over all runs, ``timeout_s`` per read. Whether a URL may be read ahead
at all (the SSRF guard's decision, no site API or paid reader) is the read function's call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from fathom.tools.readers import Reading

log = logging.getLogger(__name__)

ReadAhead = Callable[[str], Awaitable[Reading | None]]  # None: not to be read ahead, or failed


@dataclass(eq=False)
class _Ahead:
    """One page read ahead: its task, whether the run still wants it, the bytes it holds."""

    kept: bool = False
    size: int = 0
    dropped: bool = False
    task: asyncio.Task[Reading | None] = field(init=False)


class Prefetcher:
    """Reads pages ahead with ``read`` (see the module docstring for the bounds and lifetimes).

    ``counts`` says what happened (``started``, ``read``, ``used``, ``cancelled``, ``over_bytes``),
    for tests and benchmarks.
    """

    def __init__(
        self,
        read: ReadAhead,
        *,
        pages: int = 3,
        max_bytes: int = 8_000_000,
        max_in_flight: int = 16,
        timeout_s: float = 60.0,
    ) -> None:
        self._read = read
        self.pages, self.max_bytes, self.max_in_flight, self.timeout_s = pages, max_bytes, max_in_flight, timeout_s
        self._runs: dict[str, dict[str, _Ahead]] = {}  # run -> URL -> the read the run may still use
        self._live: dict[str, set[asyncio.Task[Reading | None]]] = {}  # run -> tasks not ended (cancelled too)
        self.held_bytes = 0
        self.counts: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        """Reads not ended yet (cancelled ones included until they have stopped), over all runs."""
        return sum(len(tasks) for tasks in self._live.values())

    def start(self, scope: str, urls: Sequence[str]) -> list[str]:
        """Read the first ``pages`` of ``urls`` (a search's results, best first) ahead for run
        ``scope``, after cancelling what its earlier results started and no turn asked for.
        Returns the URLs started (those read already or in flight are not started again)."""
        batch = self._runs.setdefault(scope, {})
        for url in [url for url, ahead in batch.items() if not ahead.kept]:
            self._drop(batch, url)
        started: list[str] = []
        for url in dict.fromkeys(u.strip() for u in urls[: self.pages]):
            if not url or self._find(url) is not None:
                continue
            if self.pending >= self.max_in_flight:
                break
            ahead = _Ahead()
            ahead.task = asyncio.create_task(self._run(url, ahead), name=f"read ahead {url}")
            self._live.setdefault(scope, set()).add(ahead.task)
            ahead.task.add_done_callback(lambda task, scope=scope: self._ended(scope, task))
            batch[url] = ahead
            started.append(url)
        if not batch:
            self._runs.pop(scope, None)
        self.counts["started"] += len(started)
        return started

    def settle(self, scope: str, keep: Collection[str] = ()) -> None:
        """The model's turn of run ``scope`` is written: keep the pages it reads (``keep``), cancel
        and forget the rest. ``keep=()``: the run is done with them all (it answered, or ended)."""
        wanted = {url.strip() for url in keep}
        batch = self._runs.get(scope, {})
        for url in list(batch):
            if url in wanted:
                batch[url].kept = True
            else:
                self._drop(batch, url)
        if not batch:
            self._runs.pop(scope, None)

    async def take(self, url: str) -> Reading | None:
        """The page of ``url`` when it was read ahead (waiting for a read in flight), else None.

        Cancelling the caller leaves the read itself running for whoever else wants it."""
        ahead = self._find(url.strip())
        if ahead is None:
            return None
        ahead.kept = True  # a later search of the same run must not cancel what a read waits for
        await asyncio.wait({ahead.task})
        if ahead.task.cancelled() or (reading := ahead.task.result()) is None:
            return None
        self.counts["used"] += 1
        return reading

    async def finish(self, scope: str) -> None:
        """Run ``scope`` is over: cancel its reads and wait until they have stopped."""
        self.settle(scope)
        if tasks := self._live.get(scope):
            await asyncio.wait(set(tasks))

    async def aclose(self) -> None:
        """Cancel every read and wait until they have stopped."""
        for scope in {*self._runs, *self._live}:
            await self.finish(scope)

    # ---- plumbing ---------------------------------------------------------------------------

    async def _run(self, url: str, ahead: _Ahead) -> Reading | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                reading = await self._read(url)
        except TimeoutError:
            return None
        except Exception:  # a speculative read never fails anything: query_url reads the page itself
            log.debug("reading %s ahead failed", url, exc_info=True)
            return None
        if reading is None or ahead.dropped:
            return None
        size = len(reading.document.text.encode("utf-8", "replace"))
        if self.held_bytes + size > self.max_bytes:
            self.counts["over_bytes"] += 1
            return None
        self.held_bytes += size
        ahead.size = size
        self.counts["read"] += 1
        return reading

    def _find(self, url: str) -> _Ahead | None:
        # Any run's read will do: a page is the same page whichever run read it ahead.
        return next((batch[url] for batch in self._runs.values() if url in batch), None)

    def _ended(self, scope: str, task: asyncio.Task[Reading | None]) -> None:
        tasks = self._live.get(scope, set())
        tasks.discard(task)
        if not tasks:
            self._live.pop(scope, None)

    def _drop(self, batch: dict[str, _Ahead], url: str) -> None:
        ahead = batch.pop(url)
        ahead.dropped = True
        if not ahead.task.done():
            ahead.task.cancel()
            self.counts["cancelled"] += 1
        self.held_bytes -= ahead.size
        ahead.size = 0


__all__ = ["Prefetcher", "ReadAhead"]
