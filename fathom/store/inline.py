"""SQLite writes on the event loop's own thread, whenever they need not wait for the write lock.

Handing a write to a worker thread costs a thread switch each way, and a switch waits for the
GIL while the event loop is busy: with an eval's 32 runs in flight a checkpoint write waited
~22 ms, most of it for the switches (bench/eval_throughput.py). With WAL and ``synchronous =
NORMAL`` a commit does no fsync, so a small write transaction costs well under a millisecond of
CPU wherever it runs. :class:`LoopWriter` runs it on the loop, on a connection whose busy timeout
is 0: when another connection holds the write lock (another process, a worker thread of this
one) it raises :class:`WriteLockBusy` at once, and the caller waits for the lock in a thread as
before. The loop never sleeps on a lock; it does run the transaction's statements, so a very
large write holds it up for as long as that takes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from fathom.store.plans import Plan, run_plans_sqlite

P = ParamSpec("P")
T = TypeVar("T")


class WriteLockBusy(Exception):
    """Another connection holds SQLite's write lock: nothing was run; wait for it elsewhere."""


class LoopWriter:
    """One pooled connection of ``engine`` that runs write transactions on the calling thread
    without waiting; ``thread_writers`` is the lock this process's sync writers hold."""

    def __init__(self, engine: Engine, thread_writers: threading.Lock) -> None:
        self._engine = engine
        self._thread_writers = thread_writers
        self._conn: Connection | None = None

    async def open(self) -> None:
        """Check the connection out (in a thread: a file's first open may wait for its lock)."""
        if self._conn is not None and not self._conn.invalidated:
            return
        conn = await asyncio.to_thread(self._engine.connect)
        conn.connection.driver_connection.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
        self.close()
        self._conn = conn

    def write(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, ...)`` in one write transaction (``BEGIN IMMEDIATE``), committed.

        Raises:
            WriteLockBusy: the write lock is taken; ``fn`` was not called.
        """
        conn = self._ready()
        try:
            with self._thread_lock():
                try:
                    transaction = conn.begin()
                except sa_exc.OperationalError as exc:
                    if _busy(exc.orig):
                        raise WriteLockBusy from None
                    raise
                with transaction:
                    return fn(conn, *args, **kwargs)
        finally:
            self._drop_if_broken()

    def write_plans(self, plans: Sequence[Plan[Any]]) -> list[tuple[bool, Any]]:
        """Run ``plans`` in one write transaction, each in a savepoint (see
        :func:`~fathom.store.plans.run_plans_sqlite`).

        Raises:
            WriteLockBusy: the write lock is taken; no plan was started.
        """
        raw: Any = self._ready().connection.driver_connection
        try:
            with self._thread_lock():
                try:
                    raw.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if _busy(exc):
                        raise WriteLockBusy from None
                    raise
                return run_plans_sqlite(raw, plans)
        finally:
            self._drop_if_broken()

    def close(self) -> None:
        """Close the connection; it does not go back to the pool (its busy timeout is 0)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.invalidate()
                conn.close()

    def _ready(self) -> Connection:
        if self._conn is None:
            raise WriteLockBusy  # not opened (or dropped): the caller's thread path does the write
        return self._conn

    def _thread_lock(self) -> _NoWait:
        return _NoWait(self._thread_writers)

    def _drop_if_broken(self) -> None:
        if self._conn is not None and (self._conn.invalidated or self._conn.closed):
            self.close()


class _NoWait:
    """Hold ``lock`` if it is free at once; otherwise raise :class:`WriteLockBusy`."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise WriteLockBusy

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY or one of its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY
