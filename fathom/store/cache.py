"""SQL caches of the research tools: search results, extracted pages and goal-conditioned evidence.

They live in the run database (tables from migration 3 in :mod:`fathom.store.migrations`), so a
resumed run, a retried question or an evaluation re-run does not pay for the web twice.

* search: keyed by backend, normalised query (whitespace collapsed, case folded) and ``top_k``.
  Empty result lists are not stored: "nothing found" is often a transient failure in disguise.
* pages: keyed by the normalised URL (:func:`~fathom.tools.search.results.normalize_url`); the
  extracted :class:`~fathom.tools.extract.Document` is stored, never the raw body, and documents
  over :data:`MAX_PAGE_CHARS` are not stored at all. Failures that depend on the page, not on the
  moment (HTTP 404, a binary file) are remembered for ``negative_ttl_s`` only.
* evidence: keyed by the exact URL, the goal and the extractor's identity (path, model, budget,
  prompts). Evidence made by a fallback after a query-LLM failure is not stored.

Entries older than ``ttl_s`` are ignored when read; every ``prune_every`` writes a table loses its
expired rows and everything beyond its newest ``max_rows``. A cache that fails (database
unreachable, disk full) logs one warning and turns itself off: research goes on uncached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, delete, func, select

from fathom.aio import AsyncClosing
from fathom.errors import one_line
from fathom.store.engine import Database
from fathom.store.migrations import cache_evidence, cache_pages, cache_search
from fathom.store.sql import upsert_statement
from fathom.store.urls import URLLike
from fathom.tools.base import (
    CachedEvidence,
    CachedPage,
    FailureStage,
    SearchHit,
    Source,
)
from fathom.tools.extract import Document
from fathom.tools.search.results import normalize_url

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TTL_S = 7 * 24 * 3600.0
NEGATIVE_TTL_S = 600.0
MAX_ROWS = 20_000
PRUNE_EVERY = 100
MAX_PAGE_CHARS = 1_000_000
TABLES: dict[str, Table] = {"search": cache_search, "pages": cache_pages, "evidence": cache_evidence}


def normalize_query(query: str) -> str:
    """Spellings of one search that an engine answers alike: whitespace collapsed, case folded."""
    return " ".join(str(query).split()).casefold()


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def search_key(backend: str, query: str, top_k: int) -> str:
    return _digest("search", backend, normalize_query(query), int(top_k))


def page_key(url: str) -> str:
    return _digest("page", normalize_url(url))


def evidence_key(url: str, goal: str, extractor: str) -> str:
    # The exact URL, not a normalised one: the evidence text names the URL the model asked for.
    return _digest("evidence", url.strip(), " ".join(goal.split()), extractor)


class ToolCache(AsyncClosing):
    """The three caches on one :class:`Database` (see the module docstring).

    ``clock`` returns epoch seconds and is injectable so tests can age entries without waiting.
    """

    def __init__(
        self,
        db: Database,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        negative_ttl_s: float = NEGATIVE_TTL_S,
        max_rows: int = MAX_ROWS,
        prune_every: int = PRUNE_EVERY,
        clock: Callable[[], float] = time.time,
        owns_db: bool = False,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.negative_ttl_s = min(negative_ttl_s, ttl_s)
        self.max_rows = max_rows
        self.prune_every = max(1, prune_every)
        self.clock = clock
        self.counts: Counter[str] = Counter()  # "search_hit", "page_miss", ...: for tests and logs
        self.disabled: str | None = None  # why the cache turned itself off
        self._owns_db = owns_db
        self._writes: Counter[str] = Counter()

    @classmethod
    def open(cls, url: URLLike | None = None, **options: Any) -> ToolCache:
        """A cache on the database at ``url`` (``None``: the default database), closed by :meth:`aclose`."""
        return cls(Database(url), owns_db=True, **options)

    # ---- search ------------------------------------------------------------------------------

    async def get_search(self, backend: str, query: str, top_k: int) -> list[SearchHit] | None:
        """Hits stored for this search and still fresh, else ``None``."""
        row = await self._get("search", search_key(backend, query, top_k))
        return [SearchHit(title=h["title"], url=h["url"], snippet=h["snippet"]) for h in row["hits"]] if row else None

    async def put_search(self, backend: str, query: str, top_k: int, hits: list[SearchHit]) -> None:
        if not hits:
            return
        row = {"backend": backend[:32], "query": normalize_query(query), "top_k": int(top_k),
               "hits": [dict(h) for h in hits]}
        await self._put("search", search_key(backend, query, top_k), row)

    # ---- pages -------------------------------------------------------------------------------

    async def get_page(self, url: str) -> CachedPage | None:
        row = await self._get("pages", page_key(url))
        if row is None:
            return None
        if row["error"] is not None:
            if row["stored_at"] < self.clock() - self.negative_ttl_s:
                return None
            stage: FailureStage = "read" if row["kind"] == "error:read" else "fetch"
            return CachedPage(None, stage, row["error"])
        doc = Document(url=row["final_url"] or url, title=row["title"] or "", text=row["text"] or "",
                       truncated=bool(row["truncated"]))
        return CachedPage(doc)

    async def put_page(self, url: str, doc: Document, kind: str = "") -> None:
        """Store ``doc`` for ``url`` unless its text is over :data:`MAX_PAGE_CHARS`."""
        if len(doc.text) > MAX_PAGE_CHARS:
            return
        row = {"url": url, "final_url": doc.url, "kind": kind[:16] or None, "title": doc.title,
               "text": doc.text, "truncated": doc.truncated, "error": None}
        await self._put("pages", page_key(url), row)

    async def put_page_failure(self, url: str, stage: FailureStage, error: str) -> None:
        """Remember, for ``negative_ttl_s``, that ``url`` failed in a way that will not change soon."""
        row = {"url": url, "final_url": None, "kind": f"error:{stage}", "title": None, "text": None,
               "truncated": False, "error": error}
        await self._put("pages", page_key(url), row)

    # ---- evidence ----------------------------------------------------------------------------

    async def get_evidence(self, url: str, goal: str, extractor: str) -> CachedEvidence | None:
        row = await self._get("evidence", evidence_key(url, goal, extractor))
        if row is None:
            return None
        return CachedEvidence(row["text"], [Source(url=s["url"], title=s["title"]) for s in row["sources"]])

    async def put_evidence(self, url: str, goal: str, extractor: str, text: str, sources: list[Source]) -> None:
        row = {"url": url, "goal": goal, "extractor": extractor[:255], "text": text,
               "sources": [dict(s) for s in sources]}
        await self._put("evidence", evidence_key(url, goal, extractor), row)

    # ---- maintenance -------------------------------------------------------------------------

    async def clear(self) -> dict[str, int]:
        """Delete every cached entry; returns the rows deleted per cache. Database errors raise."""
        return await self.db.write(_clear)

    async def sizes(self) -> dict[str, int]:
        """Rows per cache. Database errors raise."""
        return await self.db.read(_sizes)

    async def aclose(self) -> None:
        if self._owns_db:
            await self.db.aclose()

    # ---- plumbing ----------------------------------------------------------------------------

    async def _get(self, name: str, key: str) -> dict[str, Any] | None:
        row = await self._safely(lambda: self.db.read(_get_row, TABLES[name], key))
        fresh = row is not None and row["stored_at"] >= self.clock() - self.ttl_s
        self.counts[f"{name}_{'hit' if fresh else 'miss'}"] += 1
        return row if fresh else None

    async def _put(self, name: str, key: str, row: dict[str, Any]) -> None:
        now = self.clock()
        self._writes[name] += 1
        prune = self._writes[name] % self.prune_every == 0
        expired_before = now - self.ttl_s  # negative entries never outlive ttl_s
        await self._safely(lambda: self.db.write(
            _put_row, TABLES[name], {**row, "cache_key": key, "stored_at": now},
            prune_to=self.max_rows if prune else None, expired_before=expired_before,
        ))
        self.counts[f"{name}_put"] += 1

    async def _safely(self, op: Callable[[], Awaitable[T]]) -> T | None:
        """Run a cache operation; the first failure turns the cache off (research goes on)."""
        if self.disabled is not None:
            return None
        try:
            return await op()
        except Exception as exc:  # any database trouble: a cache must never fail a tool call
            self.disabled = one_line(exc, 300) or type(exc).__name__
            log.warning("tool cache disabled for this run: %s", self.disabled)
            return None


# ---- transactions ----------------------------------------------------------------------------


def _get_row(conn: Connection, table: Table, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(table).where(table.c.cache_key == key)).first()
    return dict(row._mapping) if row is not None else None


def _put_row(conn: Connection, table: Table, row: dict[str, Any], *, prune_to: int | None,
             expired_before: float) -> None:
    # An upsert: concurrent writers of one key never collide.
    conn.execute(upsert_statement(conn.dialect.name, table, tuple(k for k in row if k != "cache_key")), row)
    if prune_to is not None:
        _prune(conn, table, prune_to, expired_before)


def _prune(conn: Connection, table: Table, max_rows: int, expired_before: float) -> None:
    conn.execute(delete(table).where(table.c.stored_at < expired_before))
    # Two statements: MySQL cannot delete from a table its own subquery reads.
    cutoff = conn.scalar(select(table.c.stored_at).order_by(table.c.stored_at.desc()).offset(max_rows).limit(1))
    if cutoff is not None:
        conn.execute(delete(table).where(table.c.stored_at <= cutoff))


def _clear(conn: Connection) -> dict[str, int]:
    return {name: conn.execute(delete(table)).rowcount for name, table in TABLES.items()}


def _sizes(conn: Connection) -> dict[str, int]:
    return {name: conn.scalar(select(func.count()).select_from(table)) or 0 for name, table in TABLES.items()}
