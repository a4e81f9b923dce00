"""The LLM judge's verdicts in SQL (``fathom_judgements``, migration 7).

Grading an answer with a chat model costs a request; the verdict depends only on the judge (its
model and prompt), the question, the gold answer and the answer. The eval layer digests those
into a key (:func:`fathom.eval.judges.cache_key`) and keeps the verdict here, so running or
re-judging an eval again with the same judge asks no model. Any number of workers may store
the same key at once: the first verdict stored is kept, the others are no-ops.

The store knows nothing of the eval layer's types: :class:`JudgementStore` takes any value with
``verdict``, ``reason`` and ``judge`` and hands values back through the ``make`` it was given, so
``JudgementStore(db, Judgement)`` is the eval layer's ``JudgementCache`` as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlalchemy import Connection, delete, func, select

from fathom.store.engine import Database
from fathom.store.migrations import judgements
from fathom.store.sql import upsert_statement

__all__ = ["JudgementLike", "JudgementStore", "StoredJudgement"]

J = TypeVar("J")
_VERDICT_CHARS = 16  # the widths of the columns (fathom.store.migrations.judgements)
_JUDGE_CHARS = 255


class JudgementLike(Protocol):
    """What :meth:`JudgementStore.put` reads of a judgement."""

    @property
    def verdict(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def judge(self) -> str: ...


class StoredJudgement(NamedTuple):
    """A verdict as stored, for callers without a judgement type of their own (a ``make``)."""

    verdict: str
    reason: str
    judge: str


class JudgementStore(Generic[J]):
    """Verdicts keyed by a SHA-256 hex key on an open :class:`Database` (the caller's, left open).

    ``make(verdict, reason, judge)`` builds what :meth:`get` returns. Database errors raise
    :class:`~fathom.store.errors.StoreError`; the judge decides what a failed lookup means.
    """

    def __init__(self, db: Database, make: Callable[[str, str, str], J]) -> None:
        self.db = db
        self.make = make

    async def get(self, key: str) -> J | None:
        """The verdict stored under ``key``, or ``None``."""
        row = await self.db.read(_get, key)
        return None if row is None else self.make(row["verdict"], row["reason"], row["judge"])

    async def put(self, key: str, judgement: JudgementLike) -> None:
        """Store ``judgement`` under ``key`` unless a verdict is stored there already."""
        row = {"cache_key": key, "verdict": judgement.verdict[:_VERDICT_CHARS], "reason": judgement.reason,
               "judge": judgement.judge[:_JUDGE_CHARS], "created_at": datetime.now(UTC)}
        await self.db.write(_put, row)

    async def count(self) -> int:
        """How many verdicts are stored."""
        return await self.db.read(_count)

    async def clear(self) -> int:
        """Delete every stored verdict; return how many there were."""
        return await self.db.write(_clear)


# ---- transactions ----------------------------------------------------------------------------


def _get(conn: Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(judgements).where(judgements.c.cache_key == key)).first()
    return dict(row._mapping) if row is not None else None


def _put(conn: Connection, row: dict[str, Any]) -> None:
    # Insert-or-keep: two workers grading the same answer at once never collide.
    conn.execute(upsert_statement(conn.dialect.name, judgements, ()), row)


def _count(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(judgements)) or 0


def _clear(conn: Connection) -> int:
    return conn.execute(delete(judgements)).rowcount
