"""The saver's SQL, as plain functions of a sync SQLAlchemy ``Connection``.

Each function runs inside the caller's transaction (see :class:`~fathom.checkpoints.engine.
Database`), and knows tables and dialects but nothing of serialization: callers pass encoded
rows in and get raw rows back. Dialect differences handled here: upserts (``ON CONFLICT`` on
SQLite/PostgreSQL, ``ON DUPLICATE KEY`` on MySQL) and the JSON metadata filter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from fathom.checkpoints.codec import LIST_TYPE, ListHead
from fathom.checkpoints.schema import blobs, checkpoints, writes

BlobKey = tuple[str, str, str, str]
"""(thread_id, checkpoint_ns, channel, version) of a blob row."""
CheckpointKey = tuple[str, str, str]
"""(thread_id, checkpoint_ns, checkpoint_id) of a checkpoint row."""
# A channel name and version a checkpoint reads from the blobs table.
BlobRef = tuple[str, str]
RefsOf = Callable[[str, bytes], Iterable[BlobRef]]

_CHUNK = 500  # keys per IN (...) list: far below every driver's parameter limit
_T = TypeVar("_T")


class CheckpointRecord(NamedTuple):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: dict[str, Any]


class BlobRecord(NamedTuple):
    type: str
    blob: bytes | None
    base_version: str | None


class WriteRecord(NamedTuple):
    task_id: str
    channel: str
    type: str
    blob: bytes
    task_path: str
    idx: int


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What ``alist`` selects; ``None`` fields do not constrain."""

    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    before: str | None = None


_CHECKPOINT_COLUMNS = (
    checkpoints.c.thread_id,
    checkpoints.c.checkpoint_ns,
    checkpoints.c.checkpoint_id,
    checkpoints.c.parent_checkpoint_id,
    checkpoints.c.type,
    checkpoints.c.checkpoint,
    checkpoints.c.metadata,
)

# The hot statements are built once, with bind parameters, so each call costs SQLAlchemy only
# a compiled-cache lookup instead of rebuilding (and re-deriving columns of) a CTE every time.
_BLOB_KEY = (blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version)
_WRITE_COLUMNS = (
    writes.c.task_id,
    writes.c.channel,
    writes.c.type,
    writes.c.blob,
    writes.c.task_path,
    writes.c.idx,
)
_CHECKPOINT_KEY = (writes.c.thread_id, writes.c.checkpoint_ns, writes.c.checkpoint_id)

_IN_NAMESPACE = select(*_CHECKPOINT_COLUMNS).where(
    checkpoints.c.thread_id == bindparam("thread_id"),
    checkpoints.c.checkpoint_ns == bindparam("checkpoint_ns"),
)
_SELECT_CHECKPOINT = _IN_NAMESPACE.where(checkpoints.c.checkpoint_id == bindparam("checkpoint_id"))
_SELECT_LATEST = _IN_NAMESPACE.order_by(checkpoints.c.checkpoint_id.desc()).limit(1)


def _with_writes(target: Select[Any]) -> Select[Any]:
    """One checkpoint and its pending writes in one statement (a row per write, or one row)."""
    row = target.subquery("target")
    matches = and_(
        writes.c.thread_id == row.c.thread_id,
        writes.c.checkpoint_ns == row.c.checkpoint_ns,
        writes.c.checkpoint_id == row.c.checkpoint_id,
    )
    return select(row, *_WRITE_COLUMNS).select_from(row.outerjoin(writes, matches))


_CHECKPOINT_WITH_WRITES = _with_writes(_SELECT_CHECKPOINT)
_LATEST_WITH_WRITES = _with_writes(_SELECT_LATEST)
_SELECT_WRITES_OF_MANY = select(*_CHECKPOINT_KEY, *_WRITE_COLUMNS).where(
    tuple_(*_CHECKPOINT_KEY).in_(bindparam("keys", expanding=True))
)


def _chain_query() -> Select[Any]:
    """Blob rows for the ``keys`` parameter plus, recursively, the bases of their list chains.

    The CTE walks ``base_version`` links over key columns only (its UNION deduplicates
    cheaply); the payloads are joined in once at the end.
    """
    chain = (
        select(*_BLOB_KEY, blobs.c.base_version)
        .where(tuple_(*_BLOB_KEY).in_(bindparam("keys", expanding=True)))
        .cte("fathom_chain", recursive=True)
    )
    link = blobs.alias("link")
    chain = chain.union(
        select(
            link.c.thread_id, link.c.checkpoint_ns, link.c.channel, link.c.version, link.c.base_version
        ).select_from(
            link.join(
                chain,
                and_(
                    link.c.thread_id == chain.c.thread_id,
                    link.c.checkpoint_ns == chain.c.checkpoint_ns,
                    link.c.channel == chain.c.channel,
                    link.c.version == chain.c.base_version,
                ),
            )
        )
    )
    return select(*_BLOB_KEY, blobs.c.type, blobs.c.blob, blobs.c.base_version).select_from(
        blobs.join(chain, and_(*(col == chain.c[col.name] for col in _BLOB_KEY)))
    )


_SELECT_CHAINS = _chain_query()

_LIST_HEADS = (
    select(blobs.c.version, blobs.c.length, blobs.c.digest, blobs.c.depth)
    .where(
        blobs.c.thread_id == bindparam("thread_id"),
        blobs.c.checkpoint_ns == bindparam("checkpoint_ns"),
        blobs.c.channel == bindparam("channel"),
        blobs.c.type == LIST_TYPE,
        blobs.c.length > 0,
        blobs.c.length <= bindparam("max_length"),
    )
    .order_by(blobs.c.length.desc(), blobs.c.depth)
    .limit(bindparam("limit"))
)
_BLOB_EXISTS = select(true()).where(*(col == bindparam(col.name) for col in _BLOB_KEY))


# ---- writing -------------------------------------------------------------------------------


def upsert(
    conn: Connection, table: Table, rows: dict[str, Any] | list[dict[str, Any]], *, update: Sequence[str] = ()
) -> None:
    """INSERT ``rows``; on a primary-key clash overwrite the ``update`` columns, or keep the old row."""
    conn.execute(_upsert(conn.dialect.name, table, tuple(update)), rows)


def insert_list_row(conn: Connection, row: dict[str, Any], base_digest: str) -> bool:
    """Insert a list tail only if its base row still holds the value we extend; else False.

    Check and insert are one statement, so a cached base that another process deleted (or a
    version key reused for a different value) can never yield a tail that loads wrongly.
    """
    params = {f"new_{name}": value for name, value in row.items()}
    if conn.execute(_insert_tail(conn.dialect.name), {**params, "base_digest": base_digest}).rowcount:
        return True
    # Nothing inserted: either the base is gone, or this exact version is already stored.
    return conn.execute(_BLOB_EXISTS, {c.name: row[c.name] for c in _BLOB_KEY}).first() is not None


def list_heads(
    conn: Connection, thread_id: str, checkpoint_ns: str, channel: str, max_length: int, limit: int = 8
) -> list[ListHead]:
    """Stored list versions of a channel that could prefix a list of ``max_length``, longest first."""
    params = {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "channel": channel,
        "max_length": max_length,
        "limit": limit,
    }
    return [ListHead(v, n, d, depth) for v, n, d, depth in conn.execute(_LIST_HEADS, params)]


# ---- reading -------------------------------------------------------------------------------


def select_checkpoint(
    conn: Connection, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
) -> tuple[CheckpointRecord, list[WriteRecord]] | None:
    """One checkpoint (the latest of the namespace when ``checkpoint_id`` is None) and its writes."""
    params = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is None:
        rows = conn.execute(_LATEST_WITH_WRITES, params).all()
    else:
        rows = conn.execute(_CHECKPOINT_WITH_WRITES, {**params, "checkpoint_id": checkpoint_id}).all()
    if not rows:
        return None
    width = len(_CHECKPOINT_COLUMNS)
    pending = [WriteRecord(*row[width:]) for row in rows if row[width] is not None]
    return CheckpointRecord(*rows[0][:width]), pending


def select_checkpoints(
    conn: Connection, query: ListQuery, after: CheckpointKey | None, limit: int
) -> list[CheckpointRecord]:
    """A page of ``alist``: newest first, strictly after the ``after`` cursor."""
    order = (checkpoints.c.checkpoint_id, checkpoints.c.thread_id, checkpoints.c.checkpoint_ns)
    stmt = select(*_CHECKPOINT_COLUMNS).where(*_list_filters(conn, query))
    if after is not None:
        thread_id, checkpoint_ns, checkpoint_id = after
        stmt = stmt.where(tuple_(*order) < tuple_(checkpoint_id, thread_id, checkpoint_ns))
    stmt = stmt.order_by(*(c.desc() for c in order)).limit(limit)
    return [CheckpointRecord(*row) for row in conn.execute(stmt)]


def select_blobs(conn: Connection, keys: Iterable[BlobKey]) -> dict[BlobKey, BlobRecord]:
    """The blob rows for ``keys`` plus every base row their list chains need."""
    found: dict[BlobKey, BlobRecord] = {}
    for chunk in _chunks(sorted(set(keys))):
        for t, ns, channel, version, type_, blob, base in conn.execute(_SELECT_CHAINS, {"keys": list(chunk)}):
            found[(t, ns, channel, version)] = BlobRecord(type_, blob, base)
    return found


def select_writes(conn: Connection, keys: Sequence[CheckpointKey]) -> dict[CheckpointKey, list[WriteRecord]]:
    """Pending writes of each checkpoint (unsorted; the caller applies ``writes_sort_key``)."""
    found: dict[CheckpointKey, list[WriteRecord]] = {}
    for chunk in _chunks(sorted(set(keys))):
        for t, ns, cid, *rest in conn.execute(_SELECT_WRITES_OF_MANY, {"keys": list(chunk)}):
            found.setdefault((t, ns, cid), []).append(WriteRecord(*rest))
    return found


# ---- deleting, copying, pruning ------------------------------------------------------------


def delete_threads(conn: Connection, thread_ids: Sequence[str]) -> None:
    """Every checkpoint, blob and write of the threads, all namespaces."""
    for chunk in _chunks(sorted(set(thread_ids))):
        for table in (writes, blobs, checkpoints):
            conn.execute(delete(table).where(table.c.thread_id.in_(chunk)))


def copy_thread(conn: Connection, source: str, target: str) -> None:
    """Copy every row of ``source`` to ``target``; rows the target already has are kept."""
    for table in (checkpoints, blobs, writes):
        columns = [literal(target, c.type).label(c.name) if c.name == "thread_id" else c for c in table.c]
        rows = select(*columns).where(table.c.thread_id == source)
        conn.execute(_upsert(conn.dialect.name, table, ()).from_select([c.name for c in table.c], rows))


def delete_runs(conn: Connection, run_ids: Sequence[str], refs_of: RefsOf) -> set[str]:
    """Delete the checkpoints (and their writes) made by the runs; return the threads touched.

    A surviving child of a deleted checkpoint is re-parented to its nearest surviving ancestor,
    so history stays walkable, and blobs are garbage-collected without breaking list chains.
    """
    doomed: dict[tuple[str, str], set[str]] = {}
    for chunk in _chunks(sorted(set(run_ids))):
        stmt = select(
            checkpoints.c.thread_id, checkpoints.c.checkpoint_ns, checkpoints.c.checkpoint_id
        ).where(checkpoints.c.run_id.in_(chunk))
        for thread_id, checkpoint_ns, checkpoint_id in conn.execute(stmt):
            doomed.setdefault((thread_id, checkpoint_ns), set()).add(checkpoint_id)
    for (thread_id, checkpoint_ns), ids in doomed.items():
        parents = dict(
            conn.execute(
                select(checkpoints.c.checkpoint_id, checkpoints.c.parent_checkpoint_id).where(
                    checkpoints.c.thread_id == thread_id, checkpoints.c.checkpoint_ns == checkpoint_ns
                )
            ).all()
        )
        for child, parent in parents.items():
            if child in ids or parent not in ids:
                continue
            while parent in ids:
                parent = parents.get(parent)
            _set_parent(conn, (thread_id, checkpoint_ns, child), parent)
        _delete_checkpoints(conn, thread_id, checkpoint_ns, ids)
        collect_garbage(conn, thread_id, checkpoint_ns, refs_of)
    return {thread_id for thread_id, _ in doomed}


def prune_keep_latest(conn: Connection, thread_id: str, refs_of: RefsOf) -> None:
    """Keep only the newest checkpoint (and its writes) of each namespace of the thread."""
    latest = conn.execute(
        select(checkpoints.c.checkpoint_ns, func.max(checkpoints.c.checkpoint_id))
        .where(checkpoints.c.thread_id == thread_id)
        .group_by(checkpoints.c.checkpoint_ns)
    ).all()
    for checkpoint_ns, keep in latest:
        # Delete by id, not "all but keep": writes can commit before their checkpoint row
        # (durability="async"), and those belong to a checkpoint that is about to exist.
        ids = set(
            conn.scalars(
                select(checkpoints.c.checkpoint_id).where(
                    checkpoints.c.thread_id == thread_id,
                    checkpoints.c.checkpoint_ns == checkpoint_ns,
                    checkpoints.c.checkpoint_id < keep,
                )
            )
        )
        if not ids:
            continue
        _delete_checkpoints(conn, thread_id, checkpoint_ns, ids)
        _set_parent(conn, (thread_id, checkpoint_ns, keep), None)
        collect_garbage(conn, thread_id, checkpoint_ns, refs_of)


def collect_garbage(conn: Connection, thread_id: str, checkpoint_ns: str, refs_of: RefsOf) -> None:
    """Delete the namespace's blobs that no checkpoint reads, directly or as a chain base.

    On SQLite this runs under the write lock, so a concurrent put is either fully seen or not
    started. On PostgreSQL and MySQL a run writing the same thread meanwhile could extend a
    chain whose base is being collected, so prune or delete a thread only when no run is
    writing it (as LangGraph's API server does).
    """
    live: set[BlobRef] = set()
    stored = conn.execute(
        select(checkpoints.c.type, checkpoints.c.checkpoint).where(
            checkpoints.c.thread_id == thread_id, checkpoints.c.checkpoint_ns == checkpoint_ns
        )
    )
    for type_, data in stored:
        live.update(refs_of(type_, data))
    base_of: dict[BlobRef, str | None] = {
        (channel, version): base
        for channel, version, base in conn.execute(
            select(blobs.c.channel, blobs.c.version, blobs.c.base_version).where(
                blobs.c.thread_id == thread_id, blobs.c.checkpoint_ns == checkpoint_ns
            )
        )
    }
    keep: set[BlobRef] = set()
    pending = [ref for ref in live if ref in base_of]
    while pending:
        ref = pending.pop()
        if ref in keep:
            continue
        keep.add(ref)
        if (base := base_of.get(ref)) is not None:
            pending.append((ref[0], base))
    garbage = sorted(ref for ref in base_of if ref not in keep)
    for chunk in _chunks(garbage):
        conn.execute(
            delete(blobs).where(
                blobs.c.thread_id == thread_id,
                blobs.c.checkpoint_ns == checkpoint_ns,
                tuple_(blobs.c.channel, blobs.c.version).in_(chunk),
            )
        )


# ---- helpers -------------------------------------------------------------------------------


@cache
def _upsert(dialect: str, table: Table, update_columns: tuple[str, ...]) -> Insert:
    pk = [c.name for c in table.primary_key.columns]
    if dialect in ("sqlite", "postgresql"):
        stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        if update_columns:
            return stmt.on_conflict_do_update(
                index_elements=pk, set_={c: stmt.excluded[c] for c in update_columns}
            )
        return stmt.on_conflict_do_nothing(index_elements=pk)
    upsert_mysql = mysql.insert(table)
    if update_columns:
        return upsert_mysql.on_duplicate_key_update({c: upsert_mysql.inserted[c] for c in update_columns})
    # "Do nothing" in MySQL: set a key column to the value it already has (the clash is on the
    # key). INSERT IGNORE would also swallow real errors such as truncation.
    return upsert_mysql.on_duplicate_key_update({pk[0]: upsert_mysql.inserted[pk[0]]})


@cache
def _insert_tail(dialect: str) -> Insert:
    """INSERT a blob row (``new_*`` parameters) only if its base row with ``base_digest`` exists."""
    base_present = exists().where(
        blobs.c.thread_id == bindparam("new_thread_id"),
        blobs.c.checkpoint_ns == bindparam("new_checkpoint_ns"),
        blobs.c.channel == bindparam("new_channel"),
        blobs.c.version == bindparam("new_base_version"),
        blobs.c.digest == bindparam("base_digest"),
    )
    source = select(*[bindparam(f"new_{c.name}", type_=c.type).label(c.name) for c in blobs.c]).where(
        base_present
    )
    return _upsert(dialect, blobs, ()).from_select([c.name for c in blobs.c], source)


def _list_filters(conn: Connection, query: ListQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.thread_id is not None:
        where.append(checkpoints.c.thread_id == query.thread_id)
    if query.checkpoint_ns is not None:
        where.append(checkpoints.c.checkpoint_ns == query.checkpoint_ns)
    if query.checkpoint_id is not None:
        where.append(checkpoints.c.checkpoint_id == query.checkpoint_id)
    if query.before is not None:
        where.append(checkpoints.c.checkpoint_id < query.before)
    if query.metadata:
        where.extend(_metadata_filter(conn.dialect.name, query.metadata))
    return where


def _metadata_filter(dialect: str, wanted: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """Equality on top-level metadata keys, comparing JSON values (so 1 != "1")."""
    column = checkpoints.c.metadata
    if dialect == "postgresql":
        return [type_coerce(column, postgresql.JSONB).contains(dict(wanted))]
    if dialect == "sqlite":
        # ``->`` with a plain label returns the value as minified JSON; json() minifies ours.
        return [column.op("->")(key) == func.json(json.dumps(value)) for key, value in wanted.items()]
    return [
        func.json_contains(column, json.dumps(value), _mysql_path(key)) == 1 for key, value in wanted.items()
    ]


def _mysql_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _delete_checkpoints(conn: Connection, thread_id: str, checkpoint_ns: str, ids: Iterable[str]) -> None:
    for chunk in _chunks(sorted(ids)):
        for table in (writes, checkpoints):
            conn.execute(
                delete(table).where(
                    table.c.thread_id == thread_id,
                    table.c.checkpoint_ns == checkpoint_ns,
                    table.c.checkpoint_id.in_(chunk),
                )
            )


def _set_parent(conn: Connection, key: CheckpointKey, parent: str | None) -> None:
    conn.execute(
        update(checkpoints)
        .where(
            checkpoints.c.thread_id == key[0],
            checkpoints.c.checkpoint_ns == key[1],
            checkpoints.c.checkpoint_id == key[2],
        )
        .values(parent_checkpoint_id=parent)
    )


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
