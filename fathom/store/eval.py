"""The eval work queue: named benchmark evaluations and their items, with leases, in SQL.

Any number of workers (tasks of one process, or processes on several machines sharing one
PostgreSQL or MariaDB database) work on one eval. A worker *claims* items: pending ones, and
claimed ones whose lease has expired (their worker died). Claiming is atomic: on PostgreSQL and
MySQL/MariaDB the candidate rows are locked with ``SELECT … FOR UPDATE SKIP LOCKED`` inside the
write transaction, so concurrent claimers skip each other's rows instead of waiting or sharing
them; SQLite has one writer at a time (``BEGIN IMMEDIATE``), which serializes claims outright.

A worker renews the leases of the items it holds; :meth:`EvalStore.finish` and
:meth:`EvalStore.fail` change a row only while that worker still holds it, so a worker whose
lease expired (and whose item another worker took over) cannot overwrite the new owner's work.
:meth:`EvalStore.release` hands a worker's claims back (Ctrl-C): they are pending again.

Lease times are epoch seconds of the worker's clock: machines sharing an eval need roughly
synchronized clocks (NTP), and a lease far longer than the expected clock skew.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, literal, select, union_all, update

from fathom.errors import ConfigError
from fathom.store.engine import Database
from fathom.store.migrations import EvalItemStatus, eval_items, evals, runs
from fathom.store.runs import RunRecord, insert_run
from fathom.store.sql import upsert_statement

__all__ = ["ClaimedItem", "EvalInfo", "EvalItem", "EvalItemRecord", "EvalStore"]

_INSERT_BATCH = 500


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One question of a dataset as the store takes it (any object with these attributes will do)."""

    id: str
    question: str
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An item a worker now holds: ``attempts`` counts claims, this one included."""

    id: str
    question: str
    gold: str
    extra: dict[str, Any]
    attempts: int
    run_id: str | None


@dataclass(frozen=True, slots=True)
class EvalItemRecord:
    """An item's row: its question and, once done, the answer, verdict and metrics."""

    id: str
    question: str
    gold: str
    extra: dict[str, Any]
    status: EvalItemStatus
    attempts: int
    run_id: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    verdict: str | None = None
    reason: str | None = None
    judge: str | None = None
    answer: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EvalInfo:
    """An eval with the number of its items in each status."""

    name: str
    dataset: str
    options: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class EvalStore:
    """Async access to ``fathom_evals`` and ``fathom_eval_items`` on an open :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_or_open(
        self, name: str, dataset: str, items: Iterable[Any], options: Mapping[str, Any] | None = None
    ) -> EvalInfo:
        """Register eval ``name`` over ``dataset`` with ``items`` (``id``, ``question``,
        ``answer``, ``extra``), or re-open it: items already registered are left as they are
        (answers and verdicts kept), new ones are added as pending.

        Raises:
            ConfigError: ``name`` is an eval of another dataset, or two items share an id.
        """
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for position, item in enumerate(items):
            item_id = str(item.id)
            if item_id in seen:
                raise ConfigError(f"dataset {dataset!r} has two items with id {item_id!r}")
            seen.add(item_id)
            rows.append(
                {
                    "eval_name": name,
                    "item_id": item_id,
                    "position": position,
                    "question": item.question,
                    "gold": str(item.answer),
                    "extra": dict(getattr(item, "extra", None) or {}),
                    "status": "pending",
                    "attempts": 0,
                }
            )
        return await self.db.write(_create_or_open, name, dataset, dict(options or {}), rows)

    async def claim(
        self, name: str, owner: str, lease_s: float, limit: int, *, now: float | None = None
    ) -> list[ClaimedItem]:
        """Take up to ``limit`` claimable items of eval ``name`` for ``owner``, in dataset order,
        leased for ``lease_s`` seconds: pending items, and claimed ones whose lease expired."""
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        return await self.db.write(_claim, name, owner, now, now + lease_s, limit)

    async def renew(self, name: str, owner: str, ids: Sequence[str], lease_s: float) -> list[str]:
        """Extend ``owner``'s leases on ``ids``; return the ids it still holds (a lost one is gone)."""
        if not ids:
            return []
        return await self.db.write(_renew, name, owner, list(ids), time.time() + lease_s)

    async def finish(
        self,
        name: str,
        item_id: str,
        owner: str,
        *,
        answer: str | None,
        verdict: str,
        reason: str = "",
        judge: str = "",
        metrics: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> bool:
        """Record the item as done with its answer and verdict; False (nothing written) when
        ``owner`` no longer holds it."""
        values = {
            "status": "done",
            "answer": answer,
            "verdict": verdict,
            "reason": reason,
            "judge": judge,
            "error": None,
            "metrics": dict(metrics or {}),
        }
        if run_id is not None:
            values["run_id"] = run_id
        return await self.db.write(_settle, name, item_id, owner, values)

    async def fail(
        self,
        name: str,
        item_id: str,
        owner: str,
        *,
        cause: str,
        error: str,
        metrics: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> bool:
        """Record the item as failed (``cause``, kept as ``metrics["failure"]``: model, tools, …); False when ``owner``
        no longer holds it. Failed items are claimed again only after :meth:`retry_failed`."""
        values = {
            "status": "failed",
            "error": error,
            "verdict": None,
            "metrics": {**dict(metrics or {}), "failure": cause},
        }
        if run_id is not None:
            values["run_id"] = run_id
        return await self.db.write(_settle, name, item_id, owner, values)

    async def set_run(self, name: str, item_id: str, owner: str, run_id: str) -> bool:
        """Note the item's research run while ``owner`` holds it."""
        return await self.db.write(_set_run, name, item_id, owner, run_id)

    async def create_run(self, name: str, item_id: str, owner: str, run: dict[str, Any]) -> RunRecord:
        """Record the item's research run (a :func:`~fathom.store.runs.new_run` row) and note it
        on the item while ``owner`` holds it, in one transaction.

        Raises:
            RunExistsError: the run is recorded already; nothing was written.
        """
        return await self.db.write(_create_run, name, item_id, owner, run)

    async def set_verdict(self, name: str, item_id: str, *, verdict: str, reason: str = "", judge: str = "") -> bool:
        """Replace a done item's verdict, reason and judge (a re-judging; no lease needed: done items
        have no owner); False when the item is not done or does not exist."""
        return await self.db.write(_set_verdict, name, item_id, {"verdict": verdict, "reason": reason, "judge": judge})

    async def release(self, owner: str, name: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Hand ``owner``'s claims back (all, or those of eval ``name`` / only ``ids``): they are
        pending again. Returns how many."""
        return await self.db.write(_release, owner, name, None if ids is None else list(ids))

    async def retry_failed(self, name: str) -> int:
        """Make eval ``name``'s failed items pending again; return how many."""
        return await self.db.write(_retry_failed, name)

    async def items(self, name: str, status: EvalItemStatus | None = None) -> list[EvalItemRecord]:
        """Eval ``name``'s items in dataset order (optionally only those with ``status``)."""
        return await self.db.read(_items, name, status)

    async def tally(self, name: str) -> dict[tuple[str, str | None], int]:
        """How many of eval ``name``'s items have each (status, verdict), counted by the database."""
        return await self.db.read(_tally, name)

    async def get(self, name: str) -> EvalInfo | None:
        """Eval ``name`` with its counts, or None."""
        found = await self.db.read(_list, name)
        return found[0] if found else None

    async def list_evals(self) -> list[EvalInfo]:
        """Every eval, newest first, with its counts."""
        return await self.db.read(_list, None)

    async def delete(self, name: str, *, runs: bool = True) -> bool:
        """Delete eval ``name`` and its items (and, with ``runs``, its items' runs and their
        checkpoints); False if there was no such eval."""
        return await self.db.write(_delete, name, runs)


# ---- transactions ----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _create_or_open(
    conn: Connection, name: str, dataset: str, options: dict[str, Any], rows: list[dict[str, Any]]
) -> EvalInfo:
    existing = conn.execute(select(evals.c.dataset).where(evals.c.name == name)).first()
    now = _now()
    if existing is None:
        conn.execute(insert(evals).values(name=name, dataset=dataset, options=options, created_at=now, updated_at=now))
    elif existing.dataset != dataset:
        raise ConfigError(
            f"eval {name!r} is an evaluation of dataset {existing.dataset!r}, not {dataset!r}: "
            "choose another eval name"
        )
    else:
        conn.execute(update(evals).where(evals.c.name == name).values(updated_at=now))
    if rows:
        stmt = upsert_statement(conn.dialect.name, eval_items, ())  # insert, keeping existing rows
        for start in range(0, len(rows), _INSERT_BATCH):
            conn.execute(stmt, [{**row, "updated_at": now} for row in rows[start : start + _INSERT_BATCH]])
    return _list(conn, name)[0]


def _expired(name: Any, now: Any) -> Any:
    return and_(eval_items.c.eval_name == name, eval_items.c.status == "claimed", eval_items.c.lease_until < now)


def _pending(name: Any) -> Any:
    return and_(eval_items.c.eval_name == name, eval_items.c.status == "pending")


def _claim(conn: Connection, name: str, owner: str, now: float, until: float, limit: int) -> list[ClaimedItem]:
    # Items whose worker died first (their runs continue from checkpoints), then pending ones, each
    # a walk of an index in dataset order that stops at ``limit`` (one query over both sorted every
    # claimable row on each claim: 15 ms a claim at 50,000 items). Returned in dataset order.
    if conn.dialect.name == "sqlite":
        rows = _claim_sqlite(conn, name, owner, now, until, limit)
    else:
        rows = _claim_where(conn, _expired(name, now), name, owner, until, limit)
        if len(rows) < limit:
            rows += _claim_where(conn, _pending(name), name, owner, until, limit - len(rows))
    return [
        ClaimedItem(
            id=row.item_id,
            question=row.question,
            gold=row.gold,
            extra=row.extra or {},
            attempts=row.attempts,
            run_id=row.run_id,
        )
        for row in sorted(rows, key=lambda row: (row.position, row.item_id))
    ]


def _claim_statement(owner: Any, until: Any, at: Any) -> Any:
    return update(eval_items).values(
        status="claimed", lease_owner=owner, lease_until=until, attempts=eval_items.c.attempts + 1, updated_at=at
    )


def _queue(claimable: Any, limit: Any, *columns: Any) -> Any:
    """The first ``limit`` rows matching ``claimable``, in dataset order."""
    return select(*columns, eval_items.c.item_id).where(claimable).order_by(
        eval_items.c.position, eval_items.c.item_id).limit(limit)


def _claim_sqlite(conn: Connection, name: str, owner: str, now: float, until: float, limit: int) -> list[Any]:
    """Both kinds in one statement (its one writer excludes other claimers: no lock, no re-check)."""
    params = {"eval": name, "at": now, "n": limit, "claim_owner": owner, "claim_until": until, "claim_at": _now()}
    return list(conn.execute(_sqlite_claim(), params))


@functools.cache
def _sqlite_claim() -> Any:
    """Built once: a claim runs each time a run ends, and building it cost more than running it."""
    name, n = bindparam("eval"), bindparam("n")
    arms = [_queue(claimable, n, literal(rank).label("rank"), eval_items.c.position).subquery()
            for rank, claimable in enumerate((_expired(name, bindparam("at")), _pending(name)))]
    both = union_all(*(select(arm) for arm in arms)).subquery()
    picked = select(both.c.item_id).order_by(both.c.rank, both.c.position, both.c.item_id).limit(n).cte("picked")
    claim = _claim_statement(bindparam("claim_owner"), bindparam("claim_until"),
                             bindparam("claim_at", type_=eval_items.c.updated_at.type))
    return claim.where(eval_items.c.eval_name == name, eval_items.c.item_id.in_(select(picked.c.item_id))).returning(
        *eval_items.c)


def _claim_where(conn: Connection, claimable: Any, name: str, owner: str, until: float, limit: int) -> list[Any]:
    """PostgreSQL, MariaDB/MySQL: claim up to ``limit`` rows matching ``claimable``, skipping rows
    another claimer holds locked, and looking at each again once locked."""
    chosen = _queue(claimable, limit).with_for_update(skip_locked=True)
    claim = _claim_statement(owner, until, _now())
    if conn.dialect.update_returning:  # PostgreSQL: choose, claim and read back in one statement
        # A CTE: PostgreSQL runs it once, where an IN (… LIMIT … SKIP LOCKED) subquery may run again
        # for each row and claim more than ``limit``.
        picked = chosen.cte("picked")
        stmt = claim.where(eval_items.c.eval_name == name, eval_items.c.item_id.in_(select(picked.c.item_id)), claimable)
        return list(conn.execute(stmt.returning(*eval_items.c)))
    # MariaDB/MySQL: no UPDATE … RETURNING, and no LIMIT in an IN subquery
    ids = list(conn.execute(chosen).scalars())
    if not ids:
        return []
    conn.execute(claim.where(eval_items.c.eval_name == name, eval_items.c.item_id.in_(ids), claimable))
    return list(conn.execute(select(eval_items).where(_held(name, owner), eval_items.c.item_id.in_(ids))))


def _held(name: Any, owner: Any) -> Any:
    return and_(eval_items.c.eval_name == name, eval_items.c.lease_owner == owner, eval_items.c.status == "claimed")


# One UPDATE whose WHERE is the lease check: its rowcount says whether the worker still held the
# row (SQLAlchemy's MySQL dialects count matched rows, not changed ones, like the others).


def _renew(conn: Connection, name: str, owner: str, ids: list[str], until: float) -> list[str]:
    where = and_(_held(name, owner), eval_items.c.item_id.in_(ids))
    stmt = update(eval_items).where(where).values(lease_until=until)
    if conn.dialect.update_returning:
        return list(conn.execute(stmt.returning(eval_items.c.item_id)).scalars())
    conn.execute(stmt)  # MariaDB/MySQL: no UPDATE … RETURNING, read the ids back
    return list(conn.execute(select(eval_items.c.item_id).where(where)).scalars())


# An item's own row while ``owner`` holds it, built once (each question writes it twice; building
# the statement cost several times running it): the SET columns are the parameters' other keys.
_UPDATE_HELD_ITEM = update(eval_items).where(
    _held(bindparam("k_eval"), bindparam("k_owner")), eval_items.c.item_id == bindparam("k_item"))


def _update_held(conn: Connection, name: str, item_id: str, owner: str, values: dict[str, Any]) -> bool:
    params = {**values, "k_eval": name, "k_item": item_id, "k_owner": owner}
    return conn.execute(_UPDATE_HELD_ITEM, params).rowcount > 0


def _settle(conn: Connection, name: str, item_id: str, owner: str, values: dict[str, Any]) -> bool:
    return _update_held(conn, name, item_id, owner,
                        {**values, "lease_owner": None, "lease_until": None, "updated_at": _now()})


def _set_run(conn: Connection, name: str, item_id: str, owner: str, run_id: str) -> bool:
    return _update_held(conn, name, item_id, owner, {"run_id": run_id})


def _create_run(conn: Connection, name: str, item_id: str, owner: str, run: dict[str, Any]) -> RunRecord:
    record = insert_run(conn, run)
    _set_run(conn, name, item_id, owner, record.run_id)
    return record


def _set_verdict(conn: Connection, name: str, item_id: str, values: dict[str, Any]) -> bool:
    where = and_(eval_items.c.eval_name == name, eval_items.c.item_id == item_id, eval_items.c.status == "done")
    return conn.execute(update(eval_items).where(where).values(**values, updated_at=_now())).rowcount > 0


def _release(conn: Connection, owner: str, name: str | None, ids: list[str] | None) -> int:
    conditions = [eval_items.c.lease_owner == owner, eval_items.c.status == "claimed"]
    if name is not None:
        conditions.append(eval_items.c.eval_name == name)
    if ids is not None:
        conditions.append(eval_items.c.item_id.in_(ids))
    stmt = update(eval_items).where(*conditions).values(
        status="pending", lease_owner=None, lease_until=None, updated_at=_now()
    )
    return int(conn.execute(stmt).rowcount)


def _retry_failed(conn: Connection, name: str) -> int:
    where = and_(eval_items.c.eval_name == name, eval_items.c.status == "failed")
    return int(conn.execute(update(eval_items).where(where).values(status="pending", updated_at=_now())).rowcount)


def _items(conn: Connection, name: str, status: str | None) -> list[EvalItemRecord]:
    stmt = select(eval_items).where(eval_items.c.eval_name == name)
    if status is not None:
        stmt = stmt.where(eval_items.c.status == status)
    stmt = stmt.order_by(eval_items.c.position, eval_items.c.item_id)
    return [
        EvalItemRecord(
            id=row.item_id,
            question=row.question,
            gold=row.gold,
            extra=row.extra or {},
            status=cast(EvalItemStatus, row.status),
            attempts=row.attempts,
            run_id=row.run_id,
            lease_owner=row.lease_owner,
            lease_until=row.lease_until,
            verdict=row.verdict,
            reason=row.reason,
            judge=row.judge,
            answer=row.answer,
            error=row.error,
            metrics=row.metrics or {},
            updated_at=row.updated_at,
        )
        for row in conn.execute(stmt)
    ]


def _tally(conn: Connection, name: str) -> dict[tuple[str, str | None], int]:
    stmt = (
        select(eval_items.c.status, eval_items.c.verdict, func.count())
        .where(eval_items.c.eval_name == name)
        .group_by(eval_items.c.status, eval_items.c.verdict)
    )
    return {(status, verdict): int(count) for status, verdict, count in conn.execute(stmt)}


def _list(conn: Connection, name: str | None) -> list[EvalInfo]:
    stmt = select(evals).order_by(evals.c.created_at.desc(), evals.c.name)
    counts_stmt = select(eval_items.c.eval_name, eval_items.c.status, func.count()).group_by(
        eval_items.c.eval_name, eval_items.c.status
    )
    if name is not None:
        stmt = stmt.where(evals.c.name == name)
        counts_stmt = counts_stmt.where(eval_items.c.eval_name == name)
    counts: dict[str, dict[str, int]] = {}
    for eval_name, status, count in conn.execute(counts_stmt):
        counts.setdefault(eval_name, {})[status] = int(count)
    return [
        EvalInfo(
            name=row.name,
            dataset=row.dataset,
            options=row.options or {},
            created_at=row.created_at,
            updated_at=row.updated_at,
            counts={s: counts.get(row.name, {}).get(s, 0) for s in ("pending", "claimed", "done", "failed")},
        )
        for row in conn.execute(stmt)
    ]


def _delete(conn: Connection, name: str, with_runs: bool) -> bool:
    if with_runs:
        run_ids = [
            r
            for r in conn.execute(
                select(eval_items.c.run_id).where(eval_items.c.eval_name == name, eval_items.c.run_id.is_not(None))
            ).scalars()
        ]
        if run_ids:
            from fathom.store.checkpoints import maintenance  # with the checkpoint codec: LangGraph

            conn.execute(delete(runs).where(runs.c.run_id.in_(run_ids)))
            maintenance.delete_threads(conn, run_ids)
    conn.execute(delete(eval_items).where(eval_items.c.eval_name == name))
    existed = conn.execute(delete(evals).where(evals.c.name == name)).rowcount > 0
    return existed
