"""Search the local corpus (:mod:`fathom.store.corpus`) with the database's own full-text index.

* SQLite: FTS5 (``porter unicode61`` tokenizer), ranked by ``bm25()`` with titles weighted up;
* PostgreSQL: the ``tsv`` column (English configuration, titles weighted A) and ``ts_rank_cd``;
* MySQL/MariaDB: ``MATCH … AGAINST`` in natural-language mode on the FULLTEXT index;
* a SQLite built without FTS5: ``LIKE`` on each query word, ranked by BM25 in Python. This
  fallback reads every candidate row, so it suits corpora of some thousands of files.

Every engine is asked for any of the query's words (OR), best first, as web engines answer.
Snippets are the passage that best matches the query (:mod:`fathom.tools.passages`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, or_, select, text

from fathom.store.corpus import Corpus, file_url
from fathom.store.migrations import CORPUS_FTS, corpus_files
from fathom.tools.base import SearchHit
from fathom.tools.passages import BM25, query_terms, rank_passages, split_passages, tokenize
from fathom.tools.search.results import make_hit

FullText = Literal["fts5", "postgresql", "mysql", "like"]
SNIPPET_CHARS = 300
LIKE_CANDIDATES = 500
_BODY_FOR_SNIPPET = 100_000  # a snippet is looked for in the beginning of very long texts


class LocalSearchBackend:
    """The ``local`` search backend over a :class:`Corpus` (closed by :meth:`aclose` if it owns it)."""

    name = "local"

    def __init__(self, corpus: Corpus, *, fulltext: FullText | None = None, owns_corpus: bool = False) -> None:
        self.corpus = corpus
        self._fulltext = fulltext  # None: detected on first search
        self._owns_corpus = owns_corpus

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        terms = query_terms(query)
        if not terms:
            return []
        mode = self._fulltext or await self.corpus.db.read(_detect)
        self._fulltext = mode
        rows = await self.corpus.db.read(_QUERIES[mode], terms, top_k * 2)
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for path, title, body in rows:
            if path in seen:  # one file under two indexed roots
                continue
            seen.add(path)
            hits.append(make_hit(title, file_url(Path(path)), snippet(body, query)))
            if len(hits) >= top_k:
                break
        return hits

    async def aclose(self) -> None:
        if self._owns_corpus:
            await self.corpus.aclose()


def snippet(body: str, query: str) -> str:
    """The passage of ``body`` that best matches ``query``, cut to about :data:`SNIPPET_CHARS`."""
    passages = split_passages(body[:_BODY_FOR_SNIPPET], target_chars=400, max_chars=600)
    if not passages:
        return ""
    scores = rank_passages(passages, query)
    best = passages[max(range(len(passages)), key=lambda i: (scores[i], -i))]
    words = " ".join(best.text.replace("#", " ").split())
    return words if len(words) <= SNIPPET_CHARS else words[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " \u2026"


# ---- queries (one per full-text engine) ---------------------------------------------------------

Row = tuple[str, str, str]


def _detect(conn: Connection) -> FullText:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return "postgresql"
    if dialect in ("mysql", "mariadb"):
        return "mysql"
    found = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (CORPUS_FTS,))
    return "fts5" if found.first() else "like"


def _fts5(conn: Connection, terms: list[str], limit: int) -> list[Row]:
    match = " OR ".join(f'"{t}"' for t in terms)  # quoted: words are never FTS5 operators
    stmt = text(
        f"SELECT f.path, f.title, f.body FROM {CORPUS_FTS} JOIN fathom_corpus_files f ON f.id = {CORPUS_FTS}.rowid "
        f"WHERE {CORPUS_FTS} MATCH :match AND f.error IS NULL ORDER BY bm25({CORPUS_FTS}, 5.0, 1.0) LIMIT :limit"
    )
    return [tuple(row) for row in conn.execute(stmt, {"match": match, "limit": limit})]  # type: ignore[misc]


def _postgresql(conn: Connection, terms: list[str], limit: int) -> list[Row]:
    stmt = text(
        "SELECT path, title, body FROM fathom_corpus_files, to_tsquery('english', :query) AS q "
        "WHERE error IS NULL AND tsv @@ q ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT :limit"
    )
    return [tuple(row) for row in conn.execute(stmt, {"query": " | ".join(terms), "limit": limit})]  # type: ignore[misc]


def _mysql(conn: Connection, terms: list[str], limit: int) -> list[Row]:
    stmt = text(
        "SELECT path, title, body, MATCH (title, body) AGAINST (:query IN NATURAL LANGUAGE MODE) AS score "
        "FROM fathom_corpus_files WHERE error IS NULL "
        "AND MATCH (title, body) AGAINST (:query IN NATURAL LANGUAGE MODE) ORDER BY score DESC, id LIMIT :limit"
    )
    return [(p, t, b) for p, t, b, _ in conn.execute(stmt, {"query": " ".join(terms), "limit": limit})]


def _like(conn: Connection, terms: list[str], limit: int) -> list[Row]:
    c = corpus_files.c
    matches = [or_(c.title.ilike(f"%{_escape_like(t)}%", escape="\\"), c.body.ilike(f"%{_escape_like(t)}%", escape="\\"))
               for t in terms]
    stmt = select(c.path, c.title, c.body).where(c.error.is_(None), or_(*matches)).limit(LIKE_CANDIDATES)
    rows: list[Row] = [tuple(row) for row in conn.execute(stmt)]  # type: ignore[misc]
    if not rows:
        return []
    scores = BM25([tokenize(f"{title} {title} {body}") for _, title, body in rows]).scores(tokenize(" ".join(terms)))
    order = sorted(range(len(rows)), key=lambda i: -scores[i])
    return [rows[i] for i in order[:limit]]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_QUERIES: dict[FullText, Any] = {"fts5": _fts5, "postgresql": _postgresql, "mysql": _mysql, "like": _like}
