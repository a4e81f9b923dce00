"""The run registry: one row per research run, in the same database as its checkpoints.

A run's id is its LangGraph thread id, so ``fathom runs`` lists this table and ``fathom resume
RUN`` reads the run's options here and its state from the checkpointer.

Secrets never belong in a run record: pass ``Settings.public_dict()`` (or something equally
scrubbed) as ``options``, and endpoint URLs without credentials as ``endpoints``. The registry
stores what it is given and cannot tell a key from any other string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fathom.store.engine import Database
from fathom.store.errors import RunExistsError, UnknownRunError
from fathom.store.migrations import RUN_STATUSES, RunStatus, checkpoints, runs
from fathom.store.urls import URLLike

if TYPE_CHECKING:
    from langgraph.checkpoint.serde.base import SerializerProtocol

    from fathom.store.checkpoints.saver import SQLSaver

UPDATABLE_FIELDS = frozenset(
    {"question", "options", "endpoints", "status", "rounds", "answer", "report", "error"}
)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One research run as the registry stores it (timestamps are aware, in UTC)."""

    run_id: str
    question: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    rounds: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    report: str | None = None
    error: str | None = None


class RunRegistry:
    """Async access to the ``fathom_runs`` table.

    Args:
        database: a :class:`Database` (shared with a saver, see :func:`open_store`) or a URL.
    """

    def __init__(self, database: Database | URLLike) -> None:
        self._owns_db = not isinstance(database, Database)
        self.db = database if isinstance(database, Database) else Database(database)

    async def create(
        self,
        run_id: str,
        question: str,
        *,
        options: Mapping[str, Any] | None = None,
        endpoints: Mapping[str, Any] | None = None,
        status: RunStatus = "running",
    ) -> RunRecord:
        """Record a new run (``rounds`` 0, both timestamps now).

        Raises:
            RunExistsError: a run with this id is already recorded (a :class:`StoreError`).
            ValueError: unknown status.
        """
        return await self.db.write(insert_run, new_run(run_id, question, options=options, endpoints=endpoints, status=status))

    async def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Change some of ``question, options, endpoints, status, rounds, answer, report, error``.

        ``updated_at`` is set to now. Returns the updated record.

        Raises:
            UnknownRunError: no run with this id.
            ValueError: an unknown field, status, or a negative ``rounds``.
        """
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}: not a run field")
        if "status" in fields:
            _status(fields["status"])
        if "rounds" in fields and (not isinstance(fields["rounds"], int) or fields["rounds"] < 0):
            raise ValueError(f"rounds must be a non-negative int, got {fields['rounds']!r}")
        for name in ("options", "endpoints"):
            if name in fields:
                fields[name] = dict(fields[name] or {})
        return await self.db.write(_update, run_id, {**fields, "updated_at": datetime.now(UTC)})

    async def get(self, run_id: str) -> RunRecord | None:
        """The run, or None if it is not recorded."""
        return await self.db.read(_get, run_id)

    async def list(self, status: RunStatus | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs newest first, optionally only those with ``status``."""
        if status is not None:
            _status(status)
        return await self.db.read(_list, status, max(limit, 0))

    async def delete(self, run_id: str) -> bool:
        """Delete the run and its thread's checkpoints; False if neither existed."""
        return await self.db.write(_delete, run_id)

    async def aclose(self) -> None:
        """Close the database connections, if this registry opened the database."""
        if self._owns_db:
            await self.db.aclose()


@dataclass(frozen=True)
class Store:
    """A saver and a run registry sharing one database (see :func:`open_store`).

    The saver is made on first use: it imports LangGraph, which listing runs does without.
    """

    db: Database
    runs: RunRegistry
    serde: SerializerProtocol | None = None

    @cached_property
    def saver(self) -> SQLSaver:
        from fathom.store.checkpoints.saver import SQLSaver

        return SQLSaver(self.db, serde=self.serde)


@asynccontextmanager
async def open_store(
    url: URLLike | None = None, *, serde: SerializerProtocol | None = None, database: Database | None = None
) -> AsyncIterator[Store]:
    """Open the database at ``url`` (default :func:`default_db_url`) with its schema up to date;
    or use ``database``, an open one the caller shares and closes.

    Example::

        async with open_store(settings.db_url) as store:
            graph = builder.compile(checkpointer=store.saver)
            await store.runs.create(run_id, question, options=settings.public_dict())

    Raises:
        StoreError: the database is unreachable, not a Fathom database, or too new.
    """
    db = database or Database(url)
    try:
        await db.setup()
        yield Store(db=db, runs=RunRegistry(db), serde=serde)
    finally:
        if database is None:
            await db.aclose()


# ---- transactions ----------------------------------------------------------------------------


def new_run(
    run_id: str,
    question: str,
    *,
    options: Mapping[str, Any] | None = None,
    endpoints: Mapping[str, Any] | None = None,
    status: RunStatus = "running",
) -> dict[str, Any]:
    """The registry row of a new run (``rounds`` 0, both timestamps now), for :func:`insert_run`.

    Raises:
        ValueError: unknown status.
    """
    now = datetime.now(UTC)
    return {
        "run_id": run_id,
        "question": question,
        "options": dict(options or {}),
        "endpoints": dict(endpoints or {}),
        "status": _status(status),
        "created_at": now,
        "updated_at": now,
        "rounds": 0,
    }


def insert_run(conn: Connection, values: dict[str, Any]) -> RunRecord:
    """Insert a :func:`new_run` row in the caller's transaction.

    Raises:
        RunExistsError: a run with this id is already recorded.
    """
    try:  # one statement: the primary key is the check (an eval creates runs by the hundred)
        conn.execute(insert(runs).values(**values))
    except IntegrityError as exc:
        raise RunExistsError(f"run {values['run_id']!r} is already recorded") from exc
    return _record(values)


# Built once (a run is updated several times; building the statement cost several times running
# it): the SET columns are the parameters' other keys.
_UPDATE_RUN = update(runs).where(runs.c.run_id == bindparam("k_run"))
_UPDATE_RUN_RETURNING = _UPDATE_RUN.returning(*runs.c)


def _update(conn: Connection, run_id: str, values: dict[str, Any]) -> RunRecord:
    params = {**values, "k_run": run_id}
    if conn.dialect.update_returning:  # SQLite, PostgreSQL: the row comes back with the update
        row = conn.execute(_UPDATE_RUN_RETURNING, params).first()
        record = _record(row._mapping) if row is not None else None
    else:  # MariaDB/MySQL have no UPDATE … RETURNING
        conn.execute(_UPDATE_RUN, params)
        record = _get(conn, run_id)
    if record is None:
        raise UnknownRunError(f"no run {run_id!r} is recorded")
    return record


def _get(conn: Connection, run_id: str) -> RunRecord | None:
    row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
    return _record(row._mapping) if row is not None else None


def _list(conn: Connection, status: str | None, limit: int) -> list[RunRecord]:
    stmt = select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(runs.c.status == status)
    return [_record(row._mapping) for row in conn.execute(stmt)]


def _delete(conn: Connection, run_id: str) -> bool:
    from fathom.store.checkpoints import maintenance  # with the checkpoint codec: LangGraph

    existed = conn.execute(delete(runs).where(runs.c.run_id == run_id)).rowcount > 0
    had_thread = _thread_exists(conn, run_id)
    maintenance.delete_threads(conn, [run_id])
    return existed or had_thread


def _thread_exists(conn: Connection, thread_id: str) -> bool:
    stmt = select(checkpoints.c.checkpoint_id).where(checkpoints.c.thread_id == thread_id).limit(1)
    return conn.execute(stmt).first() is not None


def _record(values: Mapping[Any, Any]) -> RunRecord:
    data = dict(values)
    return RunRecord(
        run_id=data["run_id"],
        question=data["question"],
        status=cast(RunStatus, data["status"]),
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        rounds=data.get("rounds") or 0,
        options=data.get("options") or {},
        endpoints=data.get("endpoints") or {},
        answer=data.get("answer"),
        report=data.get("report"),
        error=data.get("error"),
    )


def _status(status: str) -> str:
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}: use one of {', '.join(RUN_STATUSES)}")
    return status
