"""One Fathom database: an async engine (saver + run registry) and a lazily built sync engine.

Every database operation is written once, as a plain function of a sync SQLAlchemy
``Connection``. The async path runs it with ``AsyncConnection.run_sync`` (SQLAlchemy's greenlet
bridge, so the driver is still aiosqlite / psycopg async / aiomysql); the sync path runs the same
function on the sync engine. No event loop is involved on the sync path, so it works from
LangGraph's worker threads and even from a thread that has a running loop.

The saver's hot operations are *plans* (:mod:`fathom.store.plans`), run by
:meth:`Database.fetch` and :meth:`Database.write_plan`. On SQLite these bypass SQLAlchemy's
connection and driver adapter: the async path keeps two aiosqlite connections of its own pool
checked out (one for reads, one for writes) and runs each plan in one round trip to its thread;
the sync path runs the statements on a pooled pysqlite connection.

On PostgreSQL and MySQL a connection the server dropped (restarted, or the backend terminated by
an administrator) fails the statement that finds it dead; SQLAlchemy then empties the pool. The
operation is run once more on a fresh connection when that cannot repeat a write: any read, and
a write transaction that failed before its COMMIT was sent (so it was rolled back). A COMMIT
whose answer was lost is not repeated: it may have landed. A plan (the saver's operations) is
run again only when its first statement found the connection dead, from that statement on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from fathom.aio import loop_is_own
from fathom.store import plans as plan_runners
from fathom.store.connect import (
    BEGIN_OPTION,
    CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    configure_sqlite,
    fix_aiomysql_bytes,
    ping_when_idle,
)
from fathom.store.errors import StoreError, driver_message, translated
from fathom.store.inline import LoopConnection, WouldWait
from fathom.store.migrations import migrate
from fathom.store.plans import Plan, run_plan, run_plan_aiosqlite, run_plan_sqlite, run_plans_sqlite
from fathom.store.retries import Tries
from fathom.store.urls import Backend, DatabaseURL, URLLike, default_db_url, resolve_url
from fathom.store.wal import WalCheckpointer

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

# The most checkpoint writes one SQLite transaction takes at once (a group commit).
_GROUP_COMMIT_MAX = 64
STATEMENTS_ON_LOOP = True
"""Run SQLite statements on Fathom's own loop (see inline.py); off, they always take a thread."""



class Database:
    """The engines of one Fathom database, shared by :class:`SQLSaver` and :class:`RunRegistry`.

    Create it from a URL (see :func:`~fathom.store.urls.resolve_url`); the schema is
    created or upgraded on first use, or explicitly with :meth:`setup`. Close it with
    :meth:`aclose` (async code) or :meth:`close` (sync-only code).
    """

    def __init__(self, url: URLLike | DatabaseURL | None = None, *, echo: bool = False) -> None:
        # None: the default SQLite file in the user data directory.
        self.url = url if isinstance(url, DatabaseURL) else resolve_url(url if url is not None else default_db_url())
        self._echo = echo
        self.engine: AsyncEngine = create_async_engine(self.url.async_url, **self._engine_options())
        # A database file's WAL is checkpointed in a thread, not by the commit that fills it.
        self._wal = WalCheckpointer(self._sqlite_file) if self._sqlite_file else None
        if self.backend == "sqlite":
            configure_sqlite(self.engine.sync_engine, checkpoints=self._wal is None)
        else:
            ping_when_idle(self.engine.sync_engine)
            if self.url.async_url.get_driver_name() == "aiomysql":
                fix_aiomysql_bytes(self.engine.sync_engine)
        # Reads on SQLite start a deferred transaction, so WAL readers never queue behind writers.
        self._read_engine = self.engine.execution_options(**{BEGIN_OPTION: "BEGIN"})
        # PostgreSQL: plain statements need no BEGIN/ROLLBACK round trips (psycopg sets
        # autocommit on the client only). MySQL's driver would send SET AUTOCOMMIT both ways.
        self._fetch_engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.backend == "postgresql"
            else self._read_engine
        )
        # SQLite, async plans: aiosqlite connections kept checked out, keyed "reader"/"writer".
        self._pinned: dict[str, tuple[AsyncConnection, Any]] = {}
        self._sync_engine: Engine | None = None
        self._sync_read_engine: Engine | None = None
        self._sync_fetch_engine: Engine | None = None
        self._sync_lock = threading.Lock()
        self._ready = False
        # SQLite has one writer at a time. Writers of this process queue on these locks, which
        # hand over at once, instead of on SQLite's busy handler, which polls with sleeps of a
        # millisecond or more. Other processes are still serialized by the busy timeout.
        self._async_writer = asyncio.Lock()
        self._sync_writer = threading.Lock()
        # SQLite: statements run on the event loop itself unless they would wait (see inline.py).
        self._loop_conn = LoopConnection(self.sync_engine, self._sync_writer) if self.backend == "sqlite" else None
        # Checkpoint writes waiting for the writer, committed together (see _group_commit).
        self._queued_plans: list[tuple[Plan[Any], asyncio.Future[Any]]] = []
        self._plan_flusher: asyncio.Task[None] | None = None

    @property
    def backend(self) -> Backend:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included)."""
        return self.url.backend

    @property
    def sync_engine(self) -> Engine:
        """The sync engine on the same database, built on first use."""
        return self._sync_engines()[0]

    def _sync_engines(self) -> tuple[Engine, Engine, Engine]:
        """(writer, reader, plain statements) sync engines sharing one pool, built once."""
        if self._sync_engine is None or self._sync_read_engine is None or self._sync_fetch_engine is None:
            with self._sync_lock:
                if self._sync_engine is None:
                    engine = create_engine(self.url.sync_url, **self._engine_options(sync=True))
                    if self.backend == "sqlite":
                        configure_sqlite(engine, checkpoints=self._wal is None)
                    else:
                        ping_when_idle(engine)
                    self._sync_read_engine = engine.execution_options(**{BEGIN_OPTION: "BEGIN"})
                    self._sync_fetch_engine = (
                        engine.execution_options(isolation_level="AUTOCOMMIT")
                        if self.backend == "postgresql"
                        else self._sync_read_engine
                    )
                    self._sync_engine = engine
        assert self._sync_read_engine is not None and self._sync_fetch_engine is not None
        return self._sync_engine, self._sync_read_engine, self._sync_fetch_engine

    # ---- schema ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create or upgrade the schema (idempotent; runs once per :class:`Database`).

        Raises:
            StoreError: unreachable database, not a Fathom database, or newer schema.
        """
        if self._ready:
            return
        self._check_sqlite_directory()

        async def attempt(tries: Tries) -> None:
            async with self.engine.begin() as conn:
                await conn.run_sync(migrate)
                tries.commit = True

        with translated(f"cannot open {self.url}"):
            await self._reconnecting(attempt, ())
        self._ready = True

    def setup_sync(self) -> None:
        """:meth:`setup` through the sync engine."""
        if self._ready:
            return
        self._check_sqlite_directory()

        def attempt(tries: Tries) -> None:
            with self.sync_engine.begin() as conn:
                migrate(conn)
                tries.commit = True

        with translated(f"cannot open {self.url}"):
            self._reconnecting_sync(attempt, ())
        self._ready = True

    # ---- running operations ------------------------------------------------------------------

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        await self.setup()
        if self.backend == "sqlite":
            async with self._async_writer:  # the same lock as the checkpoint writes
                if await self._loop_ready():
                    assert self._loop_conn is not None
                    try:
                        with translated(str(self.url)):
                            result = self._loop_conn.write(fn, *args, **kwargs)
                        self._committed()
                        return result
                    except WouldWait:
                        pass  # another connection holds the lock: wait for it in a thread
                # A sync connection in a worker thread costs one thread round trip per
                # transaction; aiosqlite would cost one per statement.
                return await _to_the_end(self.write_sync, fn, *args, **kwargs)

        async def attempt(tries: Tries) -> T:
            async with self.engine.begin() as conn:
                result = await conn.run_sync(fn, *tries.args(), **kwargs)
                tries.commit = True  # leaving the block commits
            return result

        with translated(str(self.url)):
            return await self._reconnecting(attempt, args)

    async def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` in one read transaction (a consistent snapshot)."""
        await self.setup()
        if self.backend == "sqlite":
            if await self._loop_ready():
                assert self._loop_conn is not None
                try:
                    with translated(str(self.url)):
                        return self._loop_conn.read(fn, *args, **kwargs)
                except WouldWait:
                    pass  # the log is being recovered: read in a thread, which waits for it
            return await asyncio.to_thread(self.read_sync, fn, *args, **kwargs)  # one round trip in all

        async def attempt(tries: Tries) -> T:
            async with self._read_engine.connect() as conn:
                return await conn.run_sync(fn, *tries.args(), **kwargs)

        with translated(str(self.url)):
            return await self._reconnecting(attempt, args)

    def write_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`write` on the sync engine."""
        self.setup_sync()

        def attempt(tries: Tries) -> T:
            with self._one_sync_writer(), self.sync_engine.begin() as conn:
                result = fn(conn, *tries.args(), **kwargs)
                tries.commit = True
            return result

        with translated(str(self.url)):
            result = self._reconnecting_sync(attempt, args)
        self._committed()
        return result

    def read_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`read` on the sync engine."""
        self.setup_sync()

        def attempt(tries: Tries) -> T:
            with self._sync_engines()[1].connect() as conn:
                return fn(conn, *tries.args(), **kwargs)

        with translated(str(self.url)):
            return self._reconnecting_sync(attempt, args)

    # ---- running plans (the saver's hot path) -------------------------------------------------

    async def fetch(self, plan: Plan[T]) -> T:
        """Run a read plan with each statement on its own, outside any transaction.

        The cheapest read: no BEGIN/ROLLBACK; on SQLite no thread round trip on Fathom's own
        loop (see inline.py), else one to aiosqlite's thread in all.
        Consecutive statements may see different commits, so the caller must check the result
        and fall back to :meth:`read` when it does not hang together.
        """
        await self.setup()
        with translated(str(self.url)):
            if self.backend == "sqlite":
                if await self._loop_ready():
                    assert self._loop_conn is not None
                    try:
                        return self._loop_conn.fetch(plan)
                    except WouldWait as busy:
                        plan = busy.rest  # type: ignore[assignment]  # what is left of it
                # Plain reads need no exclusive use of the connection: concurrent ones share it.
                return await run_plan_aiosqlite(await self._pinned_sqlite("reader"), plan)

            async def attempt(tries: Tries) -> T:
                async with self._fetch_engine.connect() as conn:
                    return await conn.run_sync(run_plan, *tries.args())

            return await self._reconnecting(attempt, (plan,))

    async def write_plan(self, plan: Plan[T]) -> T:
        """Run a plan in one write transaction (``BEGIN IMMEDIATE`` on SQLite).

        On SQLite a cancelled caller returns once the transaction has ended (it runs on
        aiosqlite's thread, which finishes it), so no transaction outlives its caller.
        """
        if self.backend != "sqlite":
            return await self.write(run_plan, plan)
        await self.setup()
        with translated(str(self.url)):
            if await self._loop_ready() and not self._async_writer.locked() and not self._queued_plans:
                assert self._loop_conn is not None
                # The writer is idle: run the plan now, on the loop, in a transaction of its own.
                try:
                    [(ok, value)] = self._loop_conn.write_plans([plan])
                except WouldWait:
                    pass  # another connection holds the lock: queue for it below
                else:
                    self._committed()
                    if not ok:
                        raise value
                    return value  # type: ignore[no-any-return]
            return await self._group_commit(plan)

    async def _group_commit(self, plan: Plan[T]) -> T:
        """Queue ``plan`` for the next SQLite write transaction and wait until it has ended.

        Many runs of one process (an eval's 32) write checkpoints at the same moments. One at a
        time, each transaction costs a commit and a round trip to the writer thread, which
        waits for the GIL while the event loop is busy: the queue grew to ~60 ms a write. The
        flusher instead takes every plan waiting and runs them in one transaction, each in its
        own savepoint (:func:`run_plans_sqlite`). A cancelled caller still returns only once its
        plan's transaction has ended, so no write of it lands after the writes that follow.
        """
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued_plans.append((plan, done))
        if self._plan_flusher is None or self._plan_flusher.done():
            self._plan_flusher = asyncio.ensure_future(self._flush_plans())
            self._plan_flusher.add_done_callback(self._flusher_ended)
        cancelled = False
        while not done.done():
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return done.result()

    def _flusher_ended(self, flusher: asyncio.Task[None]) -> None:
        """A flusher cancelled before it ran (all of a loop's tasks are, as ``asyncio.run``
        ends) never reaches its own clean-up: cancel the plans it left queued, so that no writer
        waits for them forever."""
        if flusher is not self._plan_flusher or not (flusher.cancelled() or flusher.exception()):
            return  # a newer flusher has the queue, or this one emptied it
        queued, self._queued_plans = self._queued_plans, []
        for _, done in queued:
            if not done.done():
                done.cancel()

    async def _flush_plans(self) -> None:
        while self._queued_plans:
            batch = self._queued_plans[:_GROUP_COMMIT_MAX]
            del self._queued_plans[: len(batch)]
            try:
                outcomes = await self._commit_plans([plan for plan, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        if isinstance(exc, asyncio.CancelledError):
                            done.cancel()
                        else:
                            done.set_exception(exc)
                if not isinstance(exc, Exception):  # the flusher itself is cancelled: so is the queue
                    queued, self._queued_plans = self._queued_plans, []
                    for _, done in queued:
                        done.cancel()
                    raise
                continue
            for (_, done), (ok, value) in zip(batch, outcomes, strict=True):
                if not done.done():
                    if ok:
                        done.set_result(value)
                    else:
                        done.set_exception(value)

    async def _commit_plans(self, plans: list[Plan[Any]]) -> list[tuple[bool, Any]]:
        async with self._async_writer:  # the writer connections are used under this lock only
            if await self._loop_ready():
                assert self._loop_conn is not None
                try:
                    outcomes = self._loop_conn.write_plans(plans)
                    self._committed()
                    return outcomes
                except WouldWait:
                    pass  # another connection holds the lock: wait for it on aiosqlite's thread
            conn = await self._pinned_sqlite("writer")
            submit = plan_runners.connection_thread(conn)
            try:
                if submit is not None:
                    outcomes = await submit(lambda: run_plans_sqlite(conn._conn, plans, begin="BEGIN IMMEDIATE"))
                else:  # an aiosqlite without its thread queue: one plan, one transaction
                    outcomes = []
                    for plan in plans:
                        try:
                            outcomes.append((True, await run_plan_aiosqlite(conn, plan, begin="BEGIN IMMEDIATE")))
                        except Exception as exc:
                            outcomes.append((False, exc))
            except BaseException:
                await self._rollback_pinned(conn)  # no-op unless the transaction's own rollback failed
                raise
        self._committed()
        return outcomes

    def fetch_sync(self, plan: Plan[T]) -> T:
        """:meth:`fetch` on the sync engine."""
        self.setup_sync()
        with translated(str(self.url)):
            if self.backend == "sqlite":
                pooled = self.sync_engine.raw_connection()
                try:
                    return run_plan_sqlite(pooled.driver_connection, plan)
                finally:
                    pooled.close()

            def attempt(tries: Tries) -> T:
                with self._sync_engines()[2].connect() as conn:
                    return run_plan(conn, *tries.args())

            return self._reconnecting_sync(attempt, (plan,))

    def write_plan_sync(self, plan: Plan[T]) -> T:
        """:meth:`write_plan` on the sync engine."""
        if self.backend != "sqlite":
            return self.write_sync(run_plan, plan)
        self.setup_sync()
        with translated(str(self.url)), self._sync_writer:
            pooled = self.sync_engine.raw_connection()
            try:
                result = run_plan_sqlite(pooled.driver_connection, plan, begin="BEGIN IMMEDIATE")
            finally:
                pooled.close()  # the pool rolls back anything still open, too
        self._committed()
        return result

    async def _reconnecting(self, attempt: Callable[[Tries], Awaitable[T]], args: tuple[Any, ...]) -> T:
        """``attempt`` (an operation on ``args``), and once more if the server had dropped the
        connection before it could matter (see the module docstring and :class:`~fathom.store.retries.Tries`)."""
        tries = Tries(args)
        try:
            return await attempt(tries)
        except sa_exc.DBAPIError as exc:
            if not tries.may_repeat(self.backend, exc):
                raise
            log.warning("%s: connection lost (%s); trying once more on a new one", self.url, driver_message(exc))
        return await attempt(tries)

    def _reconnecting_sync(self, attempt: Callable[[Tries], T], args: tuple[Any, ...]) -> T:
        """:meth:`_reconnecting` for the sync path."""
        tries = Tries(args)
        try:
            return attempt(tries)
        except sa_exc.DBAPIError as exc:
            if not tries.may_repeat(self.backend, exc):
                raise
            log.warning("%s: connection lost (%s); trying once more on a new one", self.url, driver_message(exc))
        return attempt(tries)

    async def _pinned_sqlite(self, role: str) -> Any:
        """The aiosqlite connection kept for ``role``, checked out of the pool on first use.

        Checking a connection out and back in costs two thread round trips and a greenlet
        switch per operation (the pool's rollback on return); a kept one costs nothing. It
        comes from the engine's pool, so it has the pragmas of every other connection.
        """
        pinned = self._pinned.get(role)
        if pinned is None:
            conn = await self.engine.connect()
            raw = await conn.get_raw_connection()
            if role in self._pinned:  # another task pinned one meanwhile: use that
                await conn.close()
            else:
                self._pinned[role] = (conn, raw.driver_connection)
            pinned = self._pinned[role]
        return pinned[1]

    async def _rollback_pinned(self, conn: Any) -> None:
        """Roll back the writer connection; if that fails, stop using the connection.

        aiosqlite runs requests in order on the connection's thread, so the ROLLBACK is queued
        behind the failed (or cancelled) plan, and runs even if this task is cancelled again
        while waiting for it. After a plan that ended its own transaction it does nothing.
        """
        try:
            await conn.rollback()
        except Exception:
            pinned = self._pinned.pop("writer", None)
            if pinned is not None:
                with suppress(Exception):
                    await pinned[0].invalidate()  # closed, not handed back to the pool
                    await pinned[0].close()

    @contextmanager
    def _one_sync_writer(self) -> Iterator[None]:
        if self.backend != "sqlite":
            yield
            return
        with self._sync_writer:
            yield

    # ---- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every pooled connection of both engines."""
        pinned, self._pinned = list(self._pinned.values()), {}
        for conn, _ in pinned:
            await conn.close()  # back to the pool, which dispose() then closes
        await self.engine.dispose()
        self.close()

    def close(self) -> None:
        """Close the sync engine's connections (async connections need :meth:`aclose`)."""
        if self._loop_conn is not None:
            self._loop_conn.close()
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._wal is not None:
            self._wal.close()

    @property
    def _sqlite_file(self) -> str | None:
        """The path of a SQLite database file; None for other backends and in-memory or URI names."""
        database = self.url.sync_url.database or ""
        if self.backend != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
            return None
        return database

    async def _loop_ready(self) -> bool:
        """Whether to run SQLite statements on the event loop (see inline.py), with its
        connection open: on Fathom's own loop only (:func:`~fathom.aio.run_own_loop`)."""
        if self._loop_conn is None or not STATEMENTS_ON_LOOP or not loop_is_own():
            return False
        await self._loop_conn.open()
        return True

    def _committed(self) -> None:
        if self._wal is not None:
            self._wal.committed()

    def __repr__(self) -> str:
        return f"Database({str(self.url)!r})"

    def _engine_options(self, *, sync: bool = False) -> dict[str, Any]:
        options: dict[str, Any] = {"echo": self._echo}
        if self.backend == "sqlite":
            connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            if sync:  # pooled connections move between LangGraph's worker threads
                connect_args["check_same_thread"] = False
            options["connect_args"] = connect_args
        else:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
            if self.backend == "mysql":
                options["pool_recycle"] = 3600  # MySQL drops idle connections after wait_timeout
        return options

    def _check_sqlite_directory(self) -> None:
        if self.backend != "sqlite":
            return
        database = self.url.sync_url.database or ""
        if database.startswith("file:"):
            return
        parent = Path(database).parent
        if not parent.is_dir():
            raise StoreError(f"cannot open {self.url}: directory {parent} does not exist")
        if Path(database).is_dir():  # refused here: a failed aiosqlite open leaks a thread that dies noisily
            raise StoreError(f"cannot open {self.url}: {database} is a directory, not a database file")


async def _to_the_end(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn`` in a worker thread; a cancelled caller still returns only once it has ended, so a
    write that was cancelled never lands after the writes that follow it."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
