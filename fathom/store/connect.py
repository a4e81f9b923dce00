"""How each driver's connections are set up: SQLite's pragmas and transaction start, the idle
ping of pooled server connections, and a fix for one aiomysql release.

These are SQLAlchemy pool and connection event hooks, installed by :class:`~fathom.store.engine.Database`
on each engine it builds.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc

SQLITE_BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
PING_AFTER_IDLE_S = 2.0
"""A pooled PostgreSQL/MySQL connection idle longer than this is pinged before use."""
BEGIN_OPTION = "fathom_begin"
"""Execution option read by the SQLite "begin" hook: the statement that starts a transaction."""
_RETURNED_AT = "fathom_returned_at"  # connection-record info key: when it went back to the pool


def configure_sqlite(engine: Engine, *, checkpoints: bool = True) -> None:
    """WAL, a busy timeout, and an explicit ``BEGIN IMMEDIATE`` for every write transaction.

    With ``checkpoints`` False, commits leave WAL checkpoints to a :class:`WalCheckpointer`.

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
            if not checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(BEGIN_OPTION, "BEGIN IMMEDIATE"))


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


def ping_when_idle(engine: Engine) -> None:
    """Check a pooled server connection before use, if it sat idle in the pool for a while.

    This replaces ``pool_pre_ping``, which costs a round trip on every checkout: a checkpoint
    put or get is then one round trip in three. Servers, proxies and NATs drop connections
    that sit idle, which is what the ping guards against; one handed back a moment ago worked
    then. A failed ping makes the pool replace the connection (up to three attempts).
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)  # None: connected just now
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa_exc.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def fix_aiomysql_bytes(engine: Engine) -> None:
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
