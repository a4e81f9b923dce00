"""The saver's cold operations: deleting threads and runs, copying threads, pruning, and
collecting unreferenced blobs. Plain functions of a sync SQLAlchemy ``Connection``, run inside
the caller's write transaction (see :class:`~fathom.store.engine.Database`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete, func, literal, select, tuple_, update

from fathom.store.checkpoints.queries import BlobRef, CheckpointKey, RefsOf, chunks
from fathom.store.migrations import blobs, checkpoints, writes
from fathom.store.sql import upsert_statement


def delete_threads(conn: Connection, thread_ids: Sequence[str]) -> None:
    """Every checkpoint, blob and write of the threads, all namespaces."""
    for chunk in chunks(sorted(set(thread_ids))):
        for table in (writes, blobs, checkpoints):
            conn.execute(delete(table).where(table.c.thread_id.in_(chunk)))


def copy_thread(conn: Connection, source: str, target: str) -> None:
    """Copy every row of ``source`` to ``target``; rows the target already has are kept."""
    for table in (checkpoints, blobs, writes):
        columns = [literal(target, c.type).label(c.name) if c.name == "thread_id" else c for c in table.c]
        rows = select(*columns).where(table.c.thread_id == source)
        upsert = upsert_statement(conn.dialect.name, table, ())
        conn.execute(upsert.from_select([c.name for c in table.c], rows))


def delete_runs(conn: Connection, run_ids: Sequence[str], refs_of: RefsOf) -> set[str]:
    """Delete the checkpoints (and their writes) made by the runs; return the threads touched.

    A surviving child of a deleted checkpoint is re-parented to its nearest surviving ancestor,
    so history stays walkable, and blobs are garbage-collected without breaking list chains.
    """
    doomed: dict[tuple[str, str], set[str]] = {}
    for chunk in chunks(sorted(set(run_ids))):
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
    for chunk in chunks(garbage):
        conn.execute(
            delete(blobs).where(
                blobs.c.thread_id == thread_id,
                blobs.c.checkpoint_ns == checkpoint_ns,
                tuple_(blobs.c.channel, blobs.c.version).in_(chunk),
            )
        )


def _delete_checkpoints(conn: Connection, thread_id: str, checkpoint_ns: str, ids: Iterable[str]) -> None:
    for chunk in chunks(sorted(ids)):
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
