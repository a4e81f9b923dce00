"""The saver's hot SQL: statements built once, and the plans (see :mod:`.plans`) that run them.

Plans know tables and dialects but nothing of serialization: callers pass encoded rows in and
get raw rows back. Each runs inside whatever transaction its driver provides. Dialect
differences handled here: the key list of the blob query and the JSON metadata filter (upserts:
:func:`fathom.store.sql.upsert_statement`). The cold operations (delete, copy, prune) are in
:mod:`.maintenance`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.dml import Insert

from fathom.store.checkpoints.codec import LIST_TYPE, ListHead
from fathom.store.migrations import blobs, checkpoints, writes
from fathom.store.plans import Plan, execute, execute_many, fetch_all
from fathom.store.sql import upsert_statement

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
    length: int | None  # list versions: the element count of the whole value


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
# a compiled-cache lookup (and the raw SQLite drivers compile each exactly once).
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


@cache
def _chain_query(dialect: str) -> Select[Any]:
    """Blob rows for the ``keys`` parameter plus, recursively, the bases of their list chains.

    The CTE walks ``base_version`` links over key columns only (its UNION deduplicates
    cheaply); the payloads are joined in once at the end. On SQLite the keys arrive as one
    JSON array, so a single prepared statement serves any number of keys.
    """
    if dialect == "sqlite":
        wanted = func.json_each(bindparam("keys")).table_valued("value")
        fields = [wanted.c.value.op("->>")(literal_column(str(i))) for i in range(len(_BLOB_KEY))]
        keys_match = tuple_(*_BLOB_KEY).in_(select(*fields))
    else:
        keys_match = tuple_(*_BLOB_KEY).in_(bindparam("keys", expanding=True))
    chain = select(*_BLOB_KEY, blobs.c.base_version).where(keys_match).cte("fathom_chain", recursive=True)
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
    return select(*_BLOB_KEY, blobs.c.type, blobs.c.blob, blobs.c.base_version, blobs.c.length).select_from(
        blobs.join(chain, and_(*(col == chain.c[col.name] for col in _BLOB_KEY)))
    )


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
# A stored list version becomes a prefix of a longer one, if it still holds the value we know.
_TO_PREFIX = (
    update(blobs)
    .where(
        blobs.c.thread_id == bindparam("key_thread_id"),
        blobs.c.checkpoint_ns == bindparam("key_checkpoint_ns"),
        blobs.c.channel == bindparam("key_channel"),
        blobs.c.version == bindparam("key_version"),
        blobs.c.type == LIST_TYPE,
        blobs.c.length == bindparam("key_length"),
        blobs.c.digest == bindparam("key_digest"),
    )
    .values(blob=None, base_version=bindparam("prefix_of"), depth=bindparam("new_depth"))
)


# ---- writing -------------------------------------------------------------------------------


def upsert(
    dialect: str, table: Table, rows: dict[str, Any] | list[dict[str, Any]], *, update: Sequence[str] = ()
) -> Plan[None]:
    """INSERT ``rows``; on a primary-key clash overwrite the ``update`` columns, or keep the old row."""
    statement = upsert_statement(dialect, table, tuple(update))
    if isinstance(rows, list):
        yield from execute_many(statement, rows)
    else:
        yield from execute(statement, rows)


def insert_list_row(dialect: str, row: dict[str, Any], base_digest: str) -> Plan[bool]:
    """Insert a list tail only if its base row still holds the value we extend; else False.

    Check and insert are one statement, so a cached base that another process deleted (or a
    version key reused for a different value) can never yield a tail that loads wrongly.
    """
    params = {f"new_{name}": value for name, value in row.items()}
    if (yield from execute(_insert_tail(dialect), {**params, "base_digest": base_digest})):
        return True
    # Nothing inserted: either the base is gone, or this exact version is already stored.
    return bool((yield from fetch_all(_BLOB_EXISTS, {c.name: row[c.name] for c in _BLOB_KEY})))


def make_prefixes(key: tuple[str, str, str], heads: Sequence[ListHead], longer: ListHead) -> Plan[None]:
    """Store the list versions ``heads`` as prefixes of version ``longer`` (which extends them)."""
    thread_id, checkpoint_ns, channel = key
    params = [
        {
            "key_thread_id": thread_id,
            "key_checkpoint_ns": checkpoint_ns,
            "key_channel": channel,
            "key_version": head.version,
            "key_length": head.length,
            "key_digest": head.digest,
            "prefix_of": longer.version,
            "new_depth": longer.depth + 1,
        }
        for head in heads
    ]
    if params:
        yield from execute_many(_TO_PREFIX, params)


def list_heads(
    thread_id: str, checkpoint_ns: str, channel: str, max_length: int, limit: int = 8
) -> Plan[list[ListHead]]:
    """Stored list versions of a channel that could prefix a list of ``max_length``, longest first."""
    params = {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "channel": channel,
        "max_length": max_length,
        "limit": limit,
    }
    return [ListHead(v, n, d, depth) for v, n, d, depth in (yield from fetch_all(_LIST_HEADS, params))]


# ---- reading -------------------------------------------------------------------------------


def select_checkpoint(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
) -> Plan[tuple[CheckpointRecord, list[WriteRecord]] | None]:
    """One checkpoint (the latest of the namespace when ``checkpoint_id`` is None) and its writes."""
    params = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is None:
        rows = yield from fetch_all(_LATEST_WITH_WRITES, params)
    else:
        rows = yield from fetch_all(_CHECKPOINT_WITH_WRITES, {**params, "checkpoint_id": checkpoint_id})
    if not rows:
        return None
    width = len(_CHECKPOINT_COLUMNS)
    pending = [WriteRecord(*row[width:]) for row in rows if row[width] is not None]
    return CheckpointRecord(*rows[0][:width]), pending


def select_checkpoints(
    dialect: str, query: ListQuery, after: CheckpointKey | None, limit: int
) -> Plan[list[CheckpointRecord]]:
    """A page of ``alist``: newest first, strictly after the ``after`` cursor."""
    order = (checkpoints.c.checkpoint_id, checkpoints.c.thread_id, checkpoints.c.checkpoint_ns)
    stmt = select(*_CHECKPOINT_COLUMNS).where(*_list_filters(dialect, query))
    if after is not None:
        thread_id, checkpoint_ns, checkpoint_id = after
        stmt = stmt.where(tuple_(*order) < tuple_(checkpoint_id, thread_id, checkpoint_ns))
    stmt = stmt.order_by(*(c.desc() for c in order)).limit(limit)
    return [CheckpointRecord(*row) for row in (yield from fetch_all(stmt, {}))]


def select_blobs(dialect: str, keys: Iterable[BlobKey]) -> Plan[dict[BlobKey, BlobRecord]]:
    """The blob rows for ``keys`` plus every base row their list chains need."""
    found: dict[BlobKey, BlobRecord] = {}
    for chunk in chunks(sorted(set(keys))):
        param = json.dumps(chunk) if dialect == "sqlite" else list(chunk)
        for t, ns, channel, version, *record in (yield from fetch_all(_chain_query(dialect), {"keys": param})):
            found[(t, ns, channel, version)] = BlobRecord(*record)
    return found


def select_writes(keys: Sequence[CheckpointKey]) -> Plan[dict[CheckpointKey, list[WriteRecord]]]:
    """Pending writes of each checkpoint (unsorted; the caller applies ``writes_sort_key``)."""
    found: dict[CheckpointKey, list[WriteRecord]] = {}
    for chunk in chunks(sorted(set(keys))):
        for t, ns, cid, *rest in (yield from fetch_all(_SELECT_WRITES_OF_MANY, {"keys": list(chunk)})):
            found.setdefault((t, ns, cid), []).append(WriteRecord(*rest))
    return found


# ---- helpers -------------------------------------------------------------------------------


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
    return upsert_statement(dialect, blobs, ()).from_select([c.name for c in blobs.c], source)


def _list_filters(dialect: str, query: ListQuery) -> list[ColumnElement[bool]]:
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
        where.extend(_metadata_filter(dialect, query.metadata))
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


def chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``items`` in slices small enough for one IN (...) list."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
