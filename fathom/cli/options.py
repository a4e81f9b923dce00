"""What every ``fathom`` command shares: one-line errors, exit codes, the run database option."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console

from fathom.store import StoreError, UnknownRunError, open_store

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_NO_ANSWER = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_STORE = 4
EXIT_REVIEW = 5
EXIT_INTERRUPTED = 130


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    sys.stderr.write(f"fathom: error: {' '.join(message.split())}\n")
    raise typer.Exit(code)


DbUrl = Annotated[Optional[str], typer.Option("--db", help="Run database: sqlite:///PATH, postgresql://…, mysql://… [env FATHOM_DB_URL; default: a SQLite file in the user data dir]")]


def db_url_of(flag: str | None) -> str | None:
    """The database: --db, else FATHOM_DB_URL, else the default file (None)."""
    return flag or os.environ.get("FATHOM_DB_URL") or None


def with_store(work: Any) -> Any:
    """Open the run database, run ``work(store)``, and map store errors to one line."""

    async def go(db: str | None) -> Any:
        async with open_store(db) as store:
            return await work(store)

    def call(db: str | None) -> Any:
        try:
            return asyncio.run(go(db_url_of(db)))
        except UnknownRunError as exc:
            fail(str(exc), EXIT_USAGE)
        except StoreError as exc:
            fail(str(exc), EXIT_STORE)

    return call
