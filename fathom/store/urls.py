"""User-facing database URLs -> the SQLAlchemy URLs of the async and sync drivers.

Users write ``sqlite:///runs.db``, a bare path such as ``./runs.db``, ``postgresql://…``,
``postgres://…``, ``mysql://…`` or ``mariadb://…``. The saver needs two engines on the same
database: an async one (aiosqlite, psycopg 3, aiomysql) for the graph's async calls and the run
registry, and a sync one (pysqlite, psycopg 3, pymysql) for LangGraph's sync calls. A URL that
already names a driver keeps it for the side (async or sync) that driver serves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from fathom.store.errors import StoreError

Backend = Literal["sqlite", "postgresql", "mysql"]
URLLike = str | os.PathLike[str] | URL
"""A database URL, or the path of a SQLite file."""

_BACKENDS: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
_ASYNC_DRIVERS: dict[Backend, tuple[str, ...]] = {
    "sqlite": ("aiosqlite",),
    "postgresql": ("psycopg", "psycopg_async", "asyncpg"),
    "mysql": ("aiomysql", "asyncmy"),
}
_SYNC_DRIVERS: dict[Backend, tuple[str, ...]] = {
    "sqlite": ("pysqlite",),
    "postgresql": ("psycopg", "psycopg2"),
    "mysql": ("pymysql", "mysqldb", "mysqlconnector"),
}


@dataclass(frozen=True)
class DatabaseURL:
    """One database, as the two SQLAlchemy URLs Fathom connects with."""

    backend: Backend
    async_url: URL
    sync_url: URL

    @cached_property  # every statement names its database for the error it may raise
    def display(self) -> str:
        """The URL for messages and logs: user-facing scheme, password hidden."""
        return self.sync_url.set(drivername=self.backend).render_as_string(hide_password=True)

    def __str__(self) -> str:
        return self.display


def resolve_url(url: URLLike) -> DatabaseURL:
    """Map a user-friendly URL (or a bare SQLite file path) to async and sync driver URLs.

    Raises:
        StoreError: the URL is malformed, names an unsupported database, or asks
            for an in-memory SQLite database (the sync and async engines could not share it).
    """
    parsed = _parse(url)
    name, _, driver = parsed.drivername.partition("+")
    backend = _BACKENDS.get(name)
    if backend is None:
        raise StoreError(
            f"unsupported database URL scheme {name!r}: use sqlite:///PATH, postgresql://… or mysql://…"
        )
    async_driver = driver if driver in _ASYNC_DRIVERS[backend] else _ASYNC_DRIVERS[backend][0]
    sync_driver = driver if driver in _SYNC_DRIVERS[backend] else _SYNC_DRIVERS[backend][0]
    if backend == "sqlite":
        parsed = _sqlite_file(parsed)
    elif backend == "mysql" and "charset" not in parsed.query:
        # aiomysql otherwise talks in the server's default charset, which may not be utf8mb4.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return DatabaseURL(
        backend=backend,
        async_url=parsed.set(drivername=f"{backend}+{async_driver}"),
        sync_url=parsed.set(drivername=f"{backend}+{sync_driver}"),
    )


def default_db_path() -> Path:
    """The default SQLite file: ``<user data dir>/fathom/checkpoints.db`` (directory not created)."""
    return platformdirs.user_data_path("fathom", appauthor=False) / "checkpoints.db"


def default_db_url() -> str:
    """``sqlite:///`` URL of :func:`default_db_path`, creating its directory so it can be opened."""
    path = default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.as_posix()}"


def _parse(url: URLLike) -> URL:
    if isinstance(url, URL):
        return url
    if isinstance(url, os.PathLike):
        return URL.create("sqlite", database=os.fspath(url))
    text = url.strip()
    if not text:
        raise StoreError("empty database URL")
    if "://" not in text:  # a bare path means a SQLite file
        return URL.create("sqlite", database=text)
    try:
        return make_url(text)
    except (ArgumentError, ValueError) as exc:
        shown = _masked(text)
        raise StoreError(f"malformed database URL {shown}: {exc}") from None


def _masked(text: str) -> str:
    """``text`` for an error message, with anything between ``:`` and ``@`` (a password) masked."""
    scheme, sep, rest = text.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in credentials else rest
    return repr(scheme + sep + rest)


def _sqlite_file(url: URL) -> URL:
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database or url.query.get("mode") == "memory":
        raise StoreError(
            "in-memory SQLite is not supported (the sync and async engines would see different "
            "databases): use a file path, or LangGraph's InMemorySaver"
        )
    if database.startswith("file:"):
        return url  # a SQLite URI filename; the caller knows what it asks for
    return url.set(database=str(Path(database).expanduser()))
