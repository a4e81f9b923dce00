"""Start-up cost: the research stack imported with the garbage collector paused.

A research run or an eval imports LangGraph, LangChain, LangSmith, SQLAlchemy, pydantic and
Fathom's own tools: ~270,000 objects that live as long as the process. While they are created
the cyclic collector runs hundreds of times, finds almost nothing to free, and costs ~25% of the
imports' CPU time (1.45 -> 1.1 s on the 2-core development VM, `time.process_time` around the
import of ``fathom.app.services``, 5 runs each).

Where Fathom owns the process (its commands), the imported objects are then frozen
(``gc.freeze``): every later full collection would walk them again, finding nothing, with the
event loop stopped (~150 ms each, and the middle generation's collections ~50 ms, in
``bench/eval_throughput.py``). A host that embeds Fathom keeps its collector as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (heavy imports), then restore it;
    ``freeze``: the caller owns the process, so what exists then is kept out of later collections."""
    if not gc.isenabled():  # paused by the caller already: leave it to them
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()
