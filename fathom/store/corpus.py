"""A local corpus: files indexed for full-text search in the run database (``fathom corpus``).

``fathom corpus index DIR`` stores the text of every .md, .markdown, .txt, .html, .htm, .pdf,
.docx, .xlsx, .pptx and .epub file under DIR (tables from migration 4 in :mod:`fathom.store.migrations`); a later run re-reads
only files whose size or modification time changed, and re-extracts only those whose content hash
changed. ``--search-backend local`` searches it (:mod:`fathom.store.fulltext`), and its hits
are stable ``file://`` URLs that ``query_url`` reads through :meth:`Corpus.read`.

Security boundary: :meth:`Corpus.read` serves only files the index holds, from the index, and
never opens a path named by a URL. Indexing follows no symbolic link out of the indexed directory
and skips hidden files and directories (``.git``, ``.env``).
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, delete, func, insert, select, update

from fathom.aio import AsyncClosing
from fathom.store.engine import Database
from fathom.store.migrations import corpus_files, corpus_roots
from fathom.store.urls import URLLike
from fathom.tools.base import ToolError
from fathom.tools.extract import Document, ExtractError, extract
from fathom.tools.fetch import Page
from fathom.tools.media import MediaKind

SUFFIXES: dict[str, MediaKind] = {
    ".md": MediaKind.TEXT, ".markdown": MediaKind.TEXT, ".txt": MediaKind.TEXT,
    ".html": MediaKind.HTML, ".htm": MediaKind.HTML, ".pdf": MediaKind.PDF,
    **dict.fromkeys((".docx", ".xlsx", ".pptx", ".epub"), MediaKind.OFFICE),
}
MAX_FILE_BYTES = 50_000_000  # larger files are reported and skipped
MAX_BODY_CHARS = 400_000  # upstream's text cap; a longer text is cut, and the report says so
_UTF_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset", re.IGNORECASE)
ProgressCallback = Callable[[int, int, str], None]  # (done, total, path)


class CorpusError(ToolError):
    """A corpus operation cannot be done; the message says why."""


@dataclass
class IndexReport:
    """What one ``index`` run did. ``failed`` and ``warnings`` hold ``(path, reason)`` pairs."""

    root: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RootStats:
    path: str
    files: int
    unreadable: int
    text_bytes: int
    indexed_at: datetime


def file_url(path: Path) -> str:
    """The stable URL of an indexed file: ``file://`` + its absolute path, percent-encoded."""
    return path.as_uri()


def url_path(url: str) -> Path:
    """The absolute, normalised path a ``file://`` URL names (``..`` resolved lexically, no disk access)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise CorpusError("not a file:// URL of this machine")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise CorpusError("not an absolute file path")
    return Path(os.path.normpath(path))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


class Corpus(AsyncClosing):
    """The local corpus in one :class:`Database`. Close it with :meth:`aclose` if it owns the database."""

    def __init__(self, db: Database, *, owns_db: bool = False) -> None:
        self.db = db
        self._owns_db = owns_db

    @classmethod
    def open(cls, url: URLLike | None = None) -> Corpus:
        return cls(Database(url), owns_db=True)

    async def index(self, directory: Path, *, on_progress: ProgressCallback | None = None) -> IndexReport:
        """Index ``directory`` recursively, incrementally; unreadable files are reported, not fatal."""
        root = _root(directory)
        root_key = _digest(str(root))
        report = IndexReport(str(root))
        files = await asyncio.to_thread(_scan, root, report)
        await self.db.write(_register_root, root_key, str(root))
        known: dict[str, dict[str, Any]] = await self.db.read(_entries, root_key)
        for done, path in enumerate(files, start=1):
            if on_progress is not None:
                on_progress(done - 1, len(files), str(path))
            await self._index_file(root_key, path, known.pop(str(path), None), report)
        if on_progress is not None:
            on_progress(len(files), len(files), "")
        if known:  # indexed before, gone now
            report.removed = await self.db.write(_delete_ids, [row["id"] for row in known.values()])
        return report

    async def _index_file(self, root_key: str, path: Path, known: dict[str, Any] | None, report: IndexReport) -> None:
        try:
            stat = path.stat()
            if known and known["mtime"] == stat.st_mtime and known["size"] == stat.st_size:
                report.unchanged += 1
                return
            if stat.st_size > MAX_FILE_BYTES:
                report.failed.append((str(path), f"larger than {MAX_FILE_BYTES // 1_000_000} MB"))
                return
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:  # permission denied, vanished meanwhile, I/O error
            report.failed.append((str(path), exc.strerror or type(exc).__name__))
            return
        sha = hashlib.sha256(data).hexdigest()
        row: dict[str, Any] = {"mtime": stat.st_mtime, "size": stat.st_size}
        if not (known and known["sha256"] == sha):  # new or really changed: read it again
            row.update(await asyncio.to_thread(_read_file, path, data, report), sha256=sha)
        if known:
            await self.db.write(_update, known["id"], row)
            report.updated += "sha256" in row
            report.unchanged += "sha256" not in row
        else:
            keys = {"entry_key": _digest(root_key, str(path)), "file_key": _digest(str(path)),
                    "root_key": root_key, "path": str(path)}
            await self.db.write(_insert, {**keys, **row})
            report.added += 1

    async def remove(self, directory: Path) -> int:
        """Forget ``directory`` and its files; returns how many files were forgotten."""
        root = Path(os.path.abspath(directory.expanduser()))
        with_links = Path(os.path.realpath(root))
        for candidate in dict.fromkeys((root, with_links)):
            removed = await self.db.write(_remove_root, _digest(str(candidate)))
            if removed is not None:
                return removed
        raise CorpusError(f"{root} is not an indexed directory (see 'fathom corpus stats')")

    async def stats(self) -> list[RootStats]:
        """One entry per indexed directory."""
        return await self.db.read(_stats)

    async def read(self, url: str) -> Document:
        """The indexed text of the file ``url`` names; :class:`CorpusError` if it is not indexed."""
        path = url_path(url)
        row = await self.db.read(_by_file, _digest(str(path)), str(path))
        if row is None:
            raise CorpusError("it is not a file of the indexed local corpus")
        if row["error"]:
            raise CorpusError(row["error"])
        return Document(url=file_url(path), title=row["title"], text=row["body"])

    async def aclose(self) -> None:
        if self._owns_db:
            await self.db.aclose()


# ---- files -----------------------------------------------------------------------------------


def _root(directory: Path) -> Path:
    try:
        root = directory.expanduser().resolve(strict=True)
    except OSError as exc:
        raise CorpusError(f"cannot index {directory}: {exc.strerror or exc}") from None
    if not root.is_dir():
        raise CorpusError(f"cannot index {directory}: not a directory")
    return root


def _scan(root: Path, report: IndexReport) -> list[Path]:
    """Indexable files under ``root``, sorted; links are followed only to files inside ``root``."""
    found: dict[Path, None] = {}

    def unreadable(exc: OSError) -> None:
        report.failed.append((str(exc.filename), exc.strerror or type(exc).__name__))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            real = Path(os.path.realpath(path))
            if not real.is_relative_to(root):
                report.warnings.append((str(path), "skipped: a link to a file outside the indexed directory"))
            elif real.is_file():
                found.setdefault(real)
    return sorted(found)


def _read_file(path: Path, data: bytes, report: IndexReport) -> dict[str, Any]:
    """Title, body and kind of one file; a failure is stored as ``error`` (and reported)."""
    kind = SUFFIXES[path.suffix.lower()]
    charset = None
    if kind not in (MediaKind.PDF, MediaKind.OFFICE) and not data.startswith(_UTF_BOMS):
        if b"\x00" in data[:4096]:
            return _failed(path, kind, "it is a binary file, not text", report)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            if not (kind is MediaKind.HTML and _META_CHARSET.search(data[:4096])):
                charset = "cp1252"  # the usual suspect; every byte decodes, so nothing is lost silently
                report.warnings.append((str(path), "not valid UTF-8: read as Windows-1252"))
    url = file_url(path)
    page = Page(url=url, final_url=url, status=200, content_type="", kind=kind, body=data, charset=charset)
    try:
        doc = extract(page)
    except ExtractError as exc:
        return _failed(path, kind, str(exc), report)
    body = doc.text
    if len(body) > MAX_BODY_CHARS:
        body = body[:MAX_BODY_CHARS]
        report.warnings.append((str(path), f"text cut at {MAX_BODY_CHARS:,} characters"))
    return {"kind": kind.value, "title": doc.title or _first_line(body) or path.name, "body": body, "error": None}


def _failed(path: Path, kind: MediaKind, reason: str, report: IndexReport) -> dict[str, Any]:
    report.failed.append((str(path), reason))
    return {"kind": kind.value, "title": path.name, "body": "", "error": reason}


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return ""


# ---- transactions ----------------------------------------------------------------------------


def _register_root(conn: Connection, root_key: str, path: str) -> None:
    now = datetime.now(UTC)
    if conn.execute(update(corpus_roots).where(corpus_roots.c.root_key == root_key).values(indexed_at=now)).rowcount == 0:
        if conn.scalar(select(corpus_roots.c.root_key).where(corpus_roots.c.root_key == root_key)) is None:
            conn.execute(insert(corpus_roots).values(root_key=root_key, path=path, indexed_at=now))


def _entries(conn: Connection, root_key: str) -> dict[str, dict[str, Any]]:
    c = corpus_files.c
    rows = conn.execute(select(c.id, c.path, c.mtime, c.size, c.sha256).where(c.root_key == root_key))
    return {row.path: dict(row._mapping) for row in rows}


def _insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(corpus_files).values(**row))


def _update(conn: Connection, file_id: int, row: dict[str, Any]) -> None:
    conn.execute(update(corpus_files).where(corpus_files.c.id == file_id).values(**row))


def _delete_ids(conn: Connection, ids: list[int]) -> int:
    return conn.execute(delete(corpus_files).where(corpus_files.c.id.in_(ids))).rowcount


def _remove_root(conn: Connection, root_key: str) -> int | None:
    if conn.execute(delete(corpus_roots).where(corpus_roots.c.root_key == root_key)).rowcount == 0:
        return None
    return conn.execute(delete(corpus_files).where(corpus_files.c.root_key == root_key)).rowcount


def _by_file(conn: Connection, file_key: str, path: str) -> dict[str, Any] | None:
    c = corpus_files.c
    stmt = select(c.path, c.title, c.body, c.error).where(c.file_key == file_key).limit(1)
    row = conn.execute(stmt).first()
    return dict(row._mapping) if row is not None and row.path == path else None


def _stats(conn: Connection) -> list[RootStats]:
    r, f = corpus_roots.c, corpus_files.c
    stmt = (
        select(r.path, r.indexed_at, func.count(f.id), func.count(f.error), func.sum(func.length(f.body)))
        .select_from(corpus_roots.outerjoin(corpus_files, f.root_key == r.root_key))
        .group_by(r.root_key, r.path, r.indexed_at)
        .order_by(r.path)
    )
    return [RootStats(path, int(n or 0), int(bad or 0), int(size or 0), when)
            for path, when, n, bad, size in conn.execute(stmt)]
