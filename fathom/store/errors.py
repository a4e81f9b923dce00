"""The one error type the checkpoint store raises, and the translation of driver errors into it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from fathom.errors import RunExistsError, StoreError, UnknownRunError, one_line

__all__ = ["RunExistsError", "StoreError", "UnknownRunError", "driver_message", "translated"]


def driver_message(exc: BaseException) -> str:
    """The first meaningful line of a driver error, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    # SQLAlchemy appends "[SQL: ...]" and a background link on later lines; drivers sometimes
    # wrap their message in a tuple repr such as (2003, "Can't connect ...").
    first = text.splitlines()[0].strip()
    if first.startswith("(") and first.endswith(")") and ", " in first:
        first = first[1:-1].split(", ", 1)[1].strip("'\"")
    return one_line(first)


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Re-raise database and filesystem errors as :class:`StoreError` naming ``where``."""
    try:
        yield
    except StoreError:
        raise
    # sqlite3.Error: the saver's hot path runs raw sqlite3/aiosqlite statements (see plans.py)
    except (sa_exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
        message = driver_message(exc)
        lowered = message.lower()
        # What SQLite says when it cannot write, with what the person running Fathom can do.
        if "disk i/o error" in lowered or "database or disk is full" in lowered:
            raise StoreError(f"{where}: {message} (the disk may be full, or the file at its size limit: "
                             "free space, or point FATHOM_DB_URL elsewhere)") from exc
        if "attempt to write a readonly database" in lowered:
            raise StoreError(f"{where}: {message} (the file or its directory is read-only: make it "
                             "writable, or point FATHOM_DB_URL at a writable place)") from exc
        raise StoreError(f"{where}: {message}") from exc
