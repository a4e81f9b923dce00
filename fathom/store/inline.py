"""SQLite statements on the event loop's own thread, whenever they need not wait for a lock.

Handing an operation to a worker thread costs a thread switch each way, and a switch waits for
the GIL while the event loop is busy: with an eval's 32 runs in flight a checkpoint write waited
~22 ms, most of it for the switches (bench/eval_throughput.py). With WAL and ``synchronous =
NORMAL`` a commit does no fsync, so a small transaction costs well under a millisecond of CPU
wherever it runs. :class:`LoopConnection` runs it on the loop, on a connection whose busy timeout
is 0: when another connection holds the write lock (another process, a worker thread of this
one) it raises :class:`WouldWait` at once, and the caller waits for the lock in a thread as
before. The loop never sleeps on a lock; it does run the statements, so a very large write
holds it up for as long as that takes.

Each call runs to its end without giving the loop up, so no transaction of this connection is
ever open while another coroutine could use it: reads and writes share it without a lock.
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

from fathom.store.connect import BEGIN_OPTION
from fathom.store.plans import Plan, Step, continue_plan, run_plans_sqlite, run_step_sqlite

P = ParamSpec("P")
T = TypeVar("T")


class WouldWait(Exception):
    """Another connection holds a lock this operation needs; run it (``rest``) elsewhere.

    ``rest`` is the plan to run instead: the caller's, or for a read plan stopped half way, its
    remaining statements (from the one that found the lock taken).
    """

    def __init__(self, rest: Plan[Any] | None = None) -> None:
        super().__init__("the database is locked by another connection")
        self.rest = rest


class LoopConnection:
    """One pooled connection of ``engine`` that runs statements on the calling thread without
    waiting; ``thread_writers`` is the lock this process's sync writers hold."""

    def __init__(self, engine: Engine, thread_writers: threading.Lock) -> None:
        self._engine = engine
        self._thread_writers = thread_writers
        self._conn: Connection | None = None

    async def open(self) -> None:
        """Check the connection out (in a thread: a file's first open may wait for its lock)."""
        if self._conn is not None:
            return
        conn = await asyncio.to_thread(self._engine.connect)
        conn.connection.driver_connection.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
        if self._conn is None:
            self._conn = conn
        else:  # another task opened one meanwhile
            conn.invalidate()
            conn.close()

    def write(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, ...)`` in one write transaction (``BEGIN IMMEDIATE``), committed.

        Raises:
            WouldWait: the write lock is taken; ``fn`` was not called.
        """
        conn = self._ready(None)
        try:
            with self._thread_lock(None):
                try:
                    transaction = conn.begin()
                except sa_exc.OperationalError as exc:
                    if _busy(exc.orig):
                        raise WouldWait from None
                    raise
                with transaction:
                    return fn(conn, *args, **kwargs)
        finally:
            self._drop_if_broken()

    def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, ...)`` in one read transaction (a deferred ``BEGIN``: a consistent snapshot).

        Raises:
            WouldWait: a statement found the database locked (rare in WAL mode); what ``fn``
                read is discarded, and it runs again elsewhere.
        """
        conn = self._ready(None)
        conn.execution_options(**{BEGIN_OPTION: "BEGIN"})
        try:
            with conn.begin():
                return fn(conn, *args, **kwargs)
        except sa_exc.OperationalError as exc:
            if _busy(exc.orig):
                raise WouldWait from None
            raise
        finally:
            if not conn.closed:
                conn.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})
            self._drop_if_broken()

    def write_plans(self, plans: Sequence[Plan[Any]]) -> list[tuple[bool, Any]]:
        """Run ``plans`` in one write transaction, each in a savepoint (see
        :func:`~fathom.store.plans.run_plans_sqlite`).

        Raises:
            WouldWait: the write lock is taken; no plan was started.
        """
        raw: Any = self._ready(None).connection.driver_connection
        try:
            with self._thread_lock(None):
                try:
                    raw.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if _busy(exc):
                        raise WouldWait from None
                    raise
                return run_plans_sqlite(raw, plans)
        finally:
            self._drop_if_broken()

    def fetch(self, plan: Plan[T]) -> T:
        """Run a read plan, each statement on its own (see :meth:`Database.fetch`).

        Raises:
            WouldWait: a statement found the database locked (rare in WAL mode: a log being
                recovered); ``rest`` carries the plan from that statement on.
        """
        raw: Any = self._ready(plan).connection.driver_connection
        value: Any = None
        try:
            while True:
                step = plan.send(value)
                try:
                    value = run_step_sqlite(raw, step)
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                    rest, plan = _from(step, plan), None  # type: ignore[assignment]
                    raise WouldWait(rest) from None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            if plan is not None:
                plan.close()
            self._drop_if_broken()

    def close(self) -> None:
        """Close the connection; it does not go back to the pool (its busy timeout is 0)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.invalidate()
                conn.close()

    def _ready(self, plan: Plan[Any] | None) -> Connection:
        if self._conn is None:
            raise WouldWait(plan)  # not opened (or dropped): the caller's thread path runs it
        return self._conn

    def _thread_lock(self, plan: Plan[Any] | None) -> _NoWait:
        return _NoWait(self._thread_writers, plan)

    def _drop_if_broken(self) -> None:
        if self._conn is not None and (self._conn.invalidated or self._conn.closed):
            self.close()


class _NoWait:
    """Hold ``lock`` if it is free at once; otherwise raise :class:`WouldWait`."""

    def __init__(self, lock: threading.Lock, plan: Plan[Any] | None) -> None:
        self._lock = lock
        self._plan = plan

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise WouldWait(self._plan)

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _from(pending: Step, plan: Plan[T]) -> Plan[T]:
    """``plan`` again from ``pending``, the statement it yielded last and got no answer for."""
    try:
        value = yield pending
    except BaseException:  # closed or thrown into before the answer: so is the plan
        plan.close()
        raise
    return (yield from continue_plan(plan, value))


def _busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY or one of its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY
