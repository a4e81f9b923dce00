"""One Fathom database: an async engine (saver + run registry) and a lazily built sync engine.

Every database operation is written once, as a plain function of a sync SQLAlchemy
``Connection``. The async path runs it with ``AsyncConnection.run_sync`` (SQLAlchemy's greenlet
bridge, so the driver is still aiosqlite / psycopg async / aiomysql); the sync path runs the same
function on the sync engine. No event loop is involved on the sync path, so it works from
LangGraph's worker threads and even from a thread that has a running loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fathom.checkpoints.errors import CheckpointStoreError, translated
from fathom.checkpoints.schema import migrate
from fathom.checkpoints.urls import Backend, DatabaseURL, URLLike, resolve_url

P = ParamSpec("P")
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
# Execution option read by the SQLite "begin" hook: how a transaction starts.
_BEGIN_OPTION = "fathom_begin"


class Database:
    """The engines of one Fathom database, shared by :class:`SQLSaver` and :class:`RunRegistry`.

    Create it from a URL (see :func:`~fathom.checkpoints.urls.resolve_url`); the schema is
    created or upgraded on first use, or explicitly with :meth:`setup`. Close it with
    :meth:`aclose` (async code) or :meth:`close` (sync-only code).
    """

    def __init__(self, url: URLLike | DatabaseURL, *, echo: bool = False) -> None:
        self.url = url if isinstance(url, DatabaseURL) else resolve_url(url)
        self._echo = echo
        self.engine: AsyncEngine = create_async_engine(self.url.async_url, **self._engine_options())
        if self.backend == "sqlite":
            _configure_sqlite(self.engine.sync_engine)
        elif self.url.async_url.get_driver_name() == "aiomysql":
            _fix_aiomysql_bytes(self.engine.sync_engine)
        # Reads on SQLite start a deferred transaction, so WAL readers never queue behind writers.
        self._read_engine = self.engine.execution_options(**{_BEGIN_OPTION: "BEGIN"})
        self._sync_engine: Engine | None = None
        self._sync_read_engine: Engine | None = None
        self._sync_lock = threading.Lock()
        self._ready = False
        # SQLite has one writer at a time. Writers of this process queue on these locks, which
        # hand over at once, instead of on SQLite's busy handler, which polls with sleeps of a
        # millisecond or more. Other processes are still serialized by the busy timeout.
        self._async_writer = asyncio.Lock()
        self._sync_writer = threading.Lock()

    @property
    def backend(self) -> Backend:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included)."""
        return self.url.backend

    @property
    def sync_engine(self) -> Engine:
        """The sync engine on the same database, built on first use."""
        return self._sync_engines()[0]

    def _sync_engines(self) -> tuple[Engine, Engine]:
        """(writer, reader) sync engines sharing one pool, built once."""
        if self._sync_engine is None or self._sync_read_engine is None:
            with self._sync_lock:
                if self._sync_engine is None:
                    engine = create_engine(self.url.sync_url, **self._engine_options(sync=True))
                    if self.backend == "sqlite":
                        _configure_sqlite(engine)
                    self._sync_read_engine = engine.execution_options(**{_BEGIN_OPTION: "BEGIN"})
                    self._sync_engine = engine
        assert self._sync_read_engine is not None
        return self._sync_engine, self._sync_read_engine

    # ---- schema ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create or upgrade the schema (idempotent; runs once per :class:`Database`).

        Raises:
            CheckpointStoreError: unreachable database, not a Fathom database, or newer schema.
        """
        if self._ready:
            return
        self._check_sqlite_directory()
        with translated(f"cannot open {self.url}"):
            async with self.engine.begin() as conn:
                await conn.run_sync(migrate)
        self._ready = True

    def setup_sync(self) -> None:
        """:meth:`setup` through the sync engine."""
        if self._ready:
            return
        self._check_sqlite_directory()
        with translated(f"cannot open {self.url}"), self.sync_engine.begin() as conn:
            migrate(conn)
        self._ready = True

    # ---- running operations ------------------------------------------------------------------

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        await self.setup()
        with translated(str(self.url)):
            async with self._one_writer(), self.engine.begin() as conn:
                return await conn.run_sync(fn, *args, **kwargs)

    async def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` in one read transaction (a consistent snapshot)."""
        await self.setup()
        with translated(str(self.url)):
            async with self._read_engine.connect() as conn:
                return await conn.run_sync(fn, *args, **kwargs)

    def write_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`write` on the sync engine."""
        self.setup_sync()
        with translated(str(self.url)), self._one_sync_writer(), self.sync_engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    def read_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`read` on the sync engine."""
        self.setup_sync()
        with translated(str(self.url)), self._sync_engines()[1].connect() as conn:
            return fn(conn, *args, **kwargs)

    @asynccontextmanager
    async def _one_writer(self) -> AsyncIterator[None]:
        if self.backend != "sqlite":
            yield
            return
        async with self._async_writer:
            yield

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
        await self.engine.dispose()
        self.close()

    def close(self) -> None:
        """Close the sync engine's connections (async connections need :meth:`aclose`)."""
        if self._sync_engine is not None:
            self._sync_engine.dispose()

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
            options["pool_pre_ping"] = True
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
            raise CheckpointStoreError(f"cannot open {self.url}: directory {parent} does not exist")


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and an explicit ``BEGIN IMMEDIATE`` for every write transaction.

    pysqlite/aiosqlite defer ``BEGIN`` until the first write, so a read-then-write transaction
    is not atomic and concurrent writers silently lose updates. Turning the driver's own
    transaction handling off and emitting ``BEGIN IMMEDIATE`` takes the write lock up front;
    other writers then wait on the busy timeout instead of failing with "database is locked".
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            _enable_wal(cursor)
            # WAL + NORMAL survives a killed process; only a power loss can drop the last commits
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN IMMEDIATE"))


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (a persistent setting, so this is a no-op after the first time).

    Switching needs an exclusive lock, and when two connections race to switch a new file
    SQLite may answer "database is locked" at once rather than wait on the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # only ever on a file's first open, so blocking briefly is fine


def _fix_aiomysql_bytes(engine: Engine) -> None:
    """Work around aiomysql 0.3.2 + PyMySQL >= 1.2.3, where every ``bytes`` parameter fails.

    aiomysql escapes bytes with ``pymysql.converters.escape_bytes_prefixed``, which PyMySQL
    1.2.3 turned into a placeholder string (aio-libs/aiomysql#1080). Only connections of this
    engine are patched, and only while aiomysql still has the broken import.
    """
    import aiomysql.connection

    if callable(getattr(aiomysql.connection, "escape_bytes_prefixed", None)):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        raw = dbapi_conn.driver_connection
        escape = raw.escape

        def escape_bytes_too(obj: Any, *args: Any) -> str:
            if isinstance(obj, (bytes, bytearray)):
                return f"_binary X'{obj.hex()}'"  # the form PyMySQL itself now emits
            return escape(obj, *args)

        raw.escape = escape_bytes_too
