"""Durable state for Fathom: a SQLAlchemy LangGraph checkpointer and the run registry.

One database (SQLite by default, PostgreSQL, or MySQL/MariaDB) holds every run's checkpoints and
its registry row. Typical use from the CLI::

    from fathom.store import open_store

    async with open_store(settings.db_url) as store:        # None -> default_db_url()
        graph = builder.compile(checkpointer=store.saver)
        await store.runs.create(run_id, question, options=settings.public_dict())
        config = {"configurable": {"thread_id": run_id}, "metadata": {"run_id": run_id}}
        await graph.ainvoke(inputs, config, durability="sync")
        await store.runs.update(run_id, status="answered", answer=answer)
"""

from typing import TYPE_CHECKING, Any

from fathom.store.engine import Database
from fathom.store.errors import RunExistsError, StoreError, UnknownRunError
from fathom.store.migrations import RUN_STATUSES, SCHEMA_VERSION, RunStatus
from fathom.store.runs import RunRecord, RunRegistry, Store, open_store
from fathom.store.urls import DatabaseURL, default_db_path, default_db_url, resolve_url

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "RunExistsError",
    "StoreError",
    "Database",
    "DatabaseURL",
    "RunRecord",
    "RunRegistry",
    "RunStatus",
    "SQLSaver",
    "Store",
    "UnknownRunError",
    "default_db_path",
    "default_db_url",
    "open_store",
    "resolve_url",
]

if TYPE_CHECKING:
    from fathom.store.checkpoints.saver import SQLSaver


def __getattr__(name: str) -> Any:
    """``SQLSaver`` is imported on first use: it brings LangGraph, which ``fathom runs list`` skips."""
    if name == "SQLSaver":
        from fathom.store.checkpoints.saver import SQLSaver

        return SQLSaver
    raise AttributeError(f"module 'fathom.store' has no attribute {name!r}")
