"""``SQLSaver``: a LangGraph checkpointer on SQLAlchemy for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from fathom.aio import AsyncClosing
from fathom.store import migrations as schema
from fathom.store.checkpoints import maintenance, queries, rows
from fathom.store.checkpoints.codec import (
    CachedList,
    EncodedList,
    HeadCache,
    ListEncoder,
    ListHead,
    choose_base,
    usable_base,
)
from fathom.store.checkpoints.queries import BlobRef, CheckpointKey, CheckpointRecord, ListQuery, WriteRecord
from fathom.store.checkpoints.rows import BrokenChainError, Loaded, PreparedPut
from fathom.store.engine import Database
from fathom.store.errors import StoreError
from fathom.store.plans import Plan, drive, run_plan
from fathom.store.urls import URLLike, default_db_url

DEFAULT_MAX_CHAIN_DEPTH = 256
"""Tails after which a list channel is stored whole again (bounds rows read per load)."""
DEFAULT_SEGMENT = 16
"""Tails after which a list channel's recent tails are folded into one row (see ``_write_list``)."""
PAGE_SIZE = 64
PRUNE_STRATEGIES = ("keep_latest", "delete")
T = TypeVar("T")

# Aliases for annotations inside SQLSaver, whose ``list`` method shadows the builtin there.
Cached = list[tuple[tuple[str, str, str], CachedList]]
LoadedPage = list[Loaded]
Refs = list[BlobRef]


class SQLSaver(BaseCheckpointSaver[str], AsyncClosing):
    """LangGraph checkpointer storing threads in SQLite, PostgreSQL or MySQL/MariaDB.

    Async methods (``aput``, ``aget_tuple``, ``alist``, …) run on the async engine; the sync
    ones (``put``, ``get_tuple``, ``list``, …) run the same SQL on a sync engine of the same
    database, so a graph can be invoked with ``invoke`` or ``ainvoke``. The schema is created on
    first use. Unchanged channels are stored once per version, and list channels that grow by
    appending (``messages``) store only their new tail; see :mod:`fathom.store.checkpoints.codec`.

    Example::

        async with SQLSaver.from_url("sqlite:///runs.db") as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": run_id},
                                         "metadata": {"run_id": run_id}}, durability="sync")

    Args:
        database: a URL (``sqlite:///path``, a bare path, ``postgresql://…``, ``mysql://…``) or
            a :class:`Database` shared with a :class:`~fathom.store.runs.RunRegistry`.
            The saver closes a database it opened from a URL, never a shared one.
        serde: serializer for every stored value (LangGraph's ``JsonPlusSerializer`` by default).
        max_chain_depth: links after which a list channel is stored whole again.
        segment: tails after which a list channel's recent tails are folded into one row.

    Raises:
        StoreError: from any method, when the database cannot be used.
    """

    def __init__(
        self,
        database: Database | URLLike,
        *,
        serde: SerializerProtocol | None = None,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        segment: int = DEFAULT_SEGMENT,
    ) -> None:
        super().__init__(serde=serde)
        if not 0 <= max_chain_depth < 1000:  # MySQL's default CTE recursion limit is 1000
            raise ValueError("max_chain_depth must be between 0 and 999")
        self._owns_db = not isinstance(database, Database)
        self.db = database if isinstance(database, Database) else Database(database)
        if segment < 1:
            raise ValueError("segment must be at least 1")
        self.max_chain_depth = max_chain_depth
        self.segment = segment
        self._heads = HeadCache()
        self._encoder = ListEncoder()

    @classmethod
    def from_url(cls, url: URLLike | None = None, **kwargs: Any) -> SQLSaver:
        """A saver owning its database; ``url`` defaults to :func:`default_db_url`.

        Use it as ``async with SQLSaver.from_url(url) as saver`` (or plain ``with`` in sync
        code): entering sets the schema up, leaving closes the connections.
        """
        return cls(url if url is not None else default_db_url(), **kwargs)

    async def setup(self) -> None:
        """Create or upgrade the schema now (otherwise it happens on first use)."""
        await self.db.setup()

    async def aclose(self) -> None:
        """Close the database connections, if this saver opened the database."""
        if self._owns_db:
            await self.db.aclose()

    def close(self) -> None:
        """Close the sync engine's connections, if this saver opened the database."""
        if self._owns_db:
            self.db.close()

    async def __aenter__(self) -> SQLSaver:
        try:
            await self.setup()
        except BaseException:
            await self.aclose()  # __aexit__ will not run: do not leak the pool
            raise
        return self

    def __enter__(self) -> SQLSaver:
        try:
            self.db.setup_sync()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the public API: each operation is written once (below), run async or sync ------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config``, or the latest of its thread and namespace."""
        return await self._arun(self._get_tuple(config))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Sync :meth:`aget_tuple`."""
        return self._run(self._get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first; ``filter`` is equality on metadata keys (JSON values)."""
        pages, page = self._pages(config, filter, before, limit), None
        while (plan := _next_plan(pages, page)) is not None:
            page = await self.db.read(run_plan, plan)
            for loaded in page:
                yield self._to_tuple(loaded)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Sync :meth:`alist`."""
        pages, page = self._pages(config, filter, before, limit), None
        while (plan := _next_plan(pages, page)) is not None:
            page = self.db.read_sync(run_plan, plan)
            for loaded in page:
                yield self._to_tuple(loaded)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the values of the channels in ``new_versions``."""
        return await self._arun(self._put(config, checkpoint, metadata, new_versions))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Sync :meth:`aput`."""
        return self._run(self._put(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Store a task's pending writes for the checkpoint in ``config`` (idempotent)."""
        await self._arun(self._put_writes(config, writes, task_id, task_path))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Sync :meth:`aput_writes`."""
        self._run(self._put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of the thread, in all namespaces."""
        await self._arun(self._delete_threads([str(thread_id)]))

    def delete_thread(self, thread_id: str) -> None:
        """Sync :meth:`adelete_thread`."""
        self._run(self._delete_threads([str(thread_id)]))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose ``metadata["run_id"]`` is listed, with their writes."""
        await self._arun(self._delete_for_runs(run_ids))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync :meth:`adelete_for_runs`."""
        self._run(self._delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another (a new thread)."""
        await self._arun(_db("write", maintenance.copy_thread, str(source_thread_id), str(target_thread_id)))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync :meth:`acopy_thread`."""
        self._run(_db("write", maintenance.copy_thread, str(source_thread_id), str(target_thread_id)))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the latest checkpoint per namespace (``keep_latest``), or delete all (``delete``).

        Blobs still needed by the kept checkpoints, including the bases of their list chains,
        survive. Each thread is pruned in its own transaction.
        """
        await self._arun(self._prune(thread_ids, strategy))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Sync :meth:`aprune`."""
        self._run(self._prune(thread_ids, strategy))

    def get_next_version(self, current: str | int | float | None, channel: None = None) -> str:
        """Monotonic string versions, sortable as text, as in LangGraph's own SQL savers."""
        if current is None:
            current_v = 0
        elif isinstance(current, (int, float)):
            current_v = int(current)
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # ---- the operations: which database calls, in what order (run by _arun or _run) -----------

    async def _arun(self, op: Op[T]) -> T:
        """Run ``op`` with the async methods of the database (``write``, ``fetch``, …)."""
        result: Any = None
        try:
            while True:
                call = op.send(result)
                result = await getattr(self.db, call.method)(*call.args)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    def _run(self, op: Op[T]) -> T:
        """Run ``op`` with the sync twins of those methods (``write_sync``, ``fetch_sync``, …)."""
        return drive(op, lambda call: getattr(self.db, f"{call.method}_sync")(*call.args))

    def _get_tuple(self, config: RunnableConfig) -> Op[CheckpointTuple | None]:
        target = rows.target(config)
        # Two statements without a transaction (the common, cheap case); if a delete or prune
        # removed blob rows between them, read again in one consistent transaction.
        loaded = yield from _db("fetch", self._read_one(*target))
        if loaded is not None and not rows.is_complete(loaded):
            loaded = yield from _db("read", run_plan, self._read_one(*target))
        return self._to_tuple(loaded) if loaded is not None else None

    def _pages(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Pages:
        """The plans of ``list``'s pages, newest first: send each page read to get the next plan."""
        query = rows.list_query(config, filter, before)
        after: CheckpointKey | None = None
        while (size := _page_size(limit)) > 0:
            page = yield self._read_page(query, after, size)
            if len(page) < size:
                return
            after, limit = page[-1].key, None if limit is None else limit - len(page)

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Op[RunnableConfig]:
        # Serialization runs on the caller's thread, before the transaction, to keep the
        # transaction (and SQLite's write lock) short.
        prepared = rows.prepare_put(self.serde, config, checkpoint, metadata, new_versions, encoder=self._encoder)
        self._remember((yield from _db("write_plan", self._put_rows(prepared))))
        return prepared.next_config

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> Op[None]:
        write_rows, update = rows.prepare_writes(self.serde, config, writes, task_id, task_path)
        if write_rows:
            yield from _db("write_plan", queries.upsert(self.db.backend, schema.writes, write_rows, update=update))

    def _delete_threads(self, ids: Sequence[str]) -> Op[None]:
        yield from _db("write", maintenance.delete_threads, ids)
        self._forget(ids)

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Op[None]:
        if run_ids:
            touched = yield from _db("write", maintenance.delete_runs, [str(r) for r in run_ids], self._refs_of)
            self._forget(touched)

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> Op[None]:
        ids = _prune_args(thread_ids, strategy)
        if strategy == "delete":
            yield from _db("write", maintenance.delete_threads, ids)
        else:
            for thread_id in ids:
                yield from _db("write", maintenance.prune_keep_latest, thread_id, self._refs_of)
        self._forget(ids)

    # ---- the operations, as plans (see plans.py; run by Database.write_plan / fetch / read) ----

    def _put_rows(self, prepared: PreparedPut) -> Plan[Cached]:
        """The put transaction; returns what to cache once it has committed."""
        stored = []
        for channel, version, encoded in prepared.lists:
            key = (prepared.thread_id, prepared.checkpoint_ns, channel)
            stored.append((key, (yield from self._write_list(key, version, encoded, look_up=not prepared.is_first))))
        dialect = self.db.backend
        if prepared.blob_rows:
            yield from queries.upsert(dialect, schema.blobs, prepared.blob_rows)
        yield from queries.upsert(
            dialect,
            schema.checkpoints,
            prepared.checkpoint_row,
            update=("type", "checkpoint", "metadata", "run_id"),
        )
        return stored

    def _write_list(
        self,
        key: tuple[str, str, str],
        version: str,
        encoded: EncodedList,
        *,
        look_up: bool,
    ) -> Plan[CachedList]:
        """Store one list version as a tail of the longest stored prefix, or whole.

        When the version extends this process's last one and that ends a segment (``segment``
        tails since its root), it is stored as one tail of the root instead, and the segment's
        tails become prefix rows of it (see :mod:`fathom.store.checkpoints.codec`): the same bytes,
        stored once, but one row to read for the whole segment.
        """
        cached = self._heads.get(key)
        if cached is not None and encoded.starts_with(cached.items):
            if len(cached.since_root) >= self.segment and usable_base(cached.root, self.max_chain_depth):
                head = yield from self._insert_tail(key, version, encoded, cached.root)
                if head is not None:
                    yield from queries.make_prefixes(key, cached.since_root, head)
                    return CachedList(head, encoded.items, root=head)
            base, found = usable_base(cached.head, self.max_chain_depth), True
            root, since_root = cached.root, cached.since_root
        else:
            base, found, root, since_root = None, False, None, ()
        if not found and look_up:
            # A new process, a fork, or an edited list: ask the database for a stored prefix.
            candidates = yield from queries.list_heads(*key, max_length=len(encoded))
            base, found = choose_base(encoded, candidates, self.max_chain_depth)
            root, since_root = base, ()
        if base is not None and root is not None:
            head = yield from self._insert_tail(key, version, encoded, base)
            if head is not None:
                return CachedList(head, encoded.items, root=root, since_root=(*since_root, head))
        # No usable base, or it vanished (deleted elsewhere) since it was cached: store it whole.
        row = encoded.row(None)
        yield from queries.upsert(self.db.backend, schema.blobs, rows.list_row(key, version, row))
        head = row.head(version)
        return CachedList(head, encoded.items, root=head)

    def _insert_tail(
        self, key: tuple[str, str, str], version: str, encoded: EncodedList, base: ListHead
    ) -> Plan[ListHead | None]:
        """Store ``version`` as the tail of ``base``; its head, or None if ``base`` is gone."""
        row = encoded.row(base)
        if (yield from queries.insert_list_row(self.db.backend, rows.list_row(key, version, row), base.digest)):
            return row.head(version)
        return None

    def _read_one(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> Plan[Loaded | None]:
        found = yield from queries.select_checkpoint(thread_id, checkpoint_ns, checkpoint_id)
        if found is None:
            return None
        record, pending = found
        return (yield from self._read_blobs([record], {rows.key_of(record): pending}))[0]

    def _read_page(self, query: ListQuery, after: CheckpointKey | None, size: int) -> Plan[LoadedPage]:
        records = yield from queries.select_checkpoints(self.db.backend, query, after, size)
        pending = yield from queries.select_writes([rows.key_of(r) for r in records])
        return (yield from self._read_blobs(records, pending))

    def _read_blobs(
        self,
        records: Sequence[CheckpointRecord],
        pending: Mapping[CheckpointKey, Sequence[WriteRecord]],
    ) -> Plan[LoadedPage]:
        """Decode the checkpoint rows (small) and fetch the blobs and chain bases they need."""
        decoded = [self.serde.loads_typed((r.type, r.checkpoint)) for r in records]
        keys = {
            (r.thread_id, r.checkpoint_ns, channel, version)
            for r, checkpoint in zip(records, decoded, strict=True)
            for channel, version in rows.blob_refs(checkpoint)
        }
        found = (yield from queries.select_blobs(self.db.backend, keys)) if keys else {}
        return [
            Loaded(r, checkpoint, found, list(pending.get(rows.key_of(r), ())))
            for r, checkpoint in zip(records, decoded, strict=True)
        ]

    def _refs_of(self, type_: str, data: bytes) -> Refs:
        """The blobs a stored checkpoint reads (for garbage collection)."""
        return rows.blob_refs(self.serde.loads_typed((type_, data)))

    # ---- helpers -----------------------------------------------------------------------------

    def _to_tuple(self, loaded: Loaded) -> CheckpointTuple:
        try:
            return rows.to_tuple(self.serde, loaded)
        except BrokenChainError as exc:
            raise StoreError(f"{self.db.url}: {exc}") from None

    def _forget(self, thread_ids: Sequence[str]) -> None:
        """Drop what this process remembers of deleted threads (their rows are gone)."""
        self._heads.forget_threads(thread_ids)
        self._encoder.forget_threads(thread_ids)

    def _remember(self, stored: Cached) -> None:
        for key, entry in stored:
            self._heads.put(key, entry)


class _Call(NamedTuple):
    """One call of an operation on the :class:`Database`: ``method`` names the async one, and
    ``method + "_sync"`` its sync twin (``write``/``write_sync``, ``fetch``/``fetch_sync``, …)."""

    method: Literal["fetch", "read", "write", "write_plan"]
    args: tuple[Any, ...]


Op = Generator[_Call, Any, T]
"""An operation of the saver: yields database calls, is sent their results, returns its own."""


def _db(method: Literal["fetch", "read", "write", "write_plan"], *args: Any) -> Op[Any]:
    """``result = yield from _db("write", fn, ...)``: call the database, async or sync."""
    return (yield _Call(method, args))


Pages = Generator[Plan[LoadedPage], LoadedPage, None]


def _next_plan(pages: Pages, page: LoadedPage | None) -> Plan[LoadedPage] | None:
    """The next page's plan (``page``: the last page read, None at the start), or None at the end."""
    try:
        return next(pages) if page is None else pages.send(page)
    except StopIteration:
        return None


def _page_size(limit: int | None) -> int:
    return PAGE_SIZE if limit is None else min(PAGE_SIZE, max(limit, 0))


def _prune_args(thread_ids: Sequence[str], strategy: str) -> list[str]:
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(f"unknown prune strategy {strategy!r}: use one of {', '.join(PRUNE_STRATEGIES)}")
    return sorted({str(t) for t in thread_ids})
