"""``SQLSaver``: a LangGraph checkpointer on SQLAlchemy for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Connection

from fathom.checkpoints import queries, schema
from fathom.checkpoints.codec import (
    EMPTY_TYPE,
    LIST_TYPE,
    CachedList,
    EncodedList,
    HeadCache,
    ListHead,
    ListRow,
    choose_base,
    decode_list,
    encode_list,
    is_incremental,
)
from fathom.checkpoints.engine import Database
from fathom.checkpoints.errors import CheckpointStoreError
from fathom.checkpoints.queries import BlobKey, BlobRecord, BlobRef, CheckpointRecord, ListQuery, WriteRecord
from fathom.checkpoints.urls import URLLike, default_db_url

DEFAULT_MAX_CHAIN_DEPTH = 256
"""Tails after which a list channel is stored whole again (bounds rows read per load)."""
INLINE_STR_MAX = 512
"""Strings up to this length stay inside the checkpoint row instead of getting a blob row."""
PAGE_SIZE = 64
PRUNE_STRATEGIES = ("keep_latest", "delete")

_NO_CHAIN = {"base_version": None, "length": None, "digest": None, "depth": None}


@dataclass(slots=True)
class _PreparedPut:
    """A checkpoint serialized for storage, before its transaction."""

    thread_id: str
    checkpoint_ns: str
    is_first: bool
    checkpoint_row: dict[str, Any]
    blob_rows: list[dict[str, Any]]
    lists: list[tuple[str, str, EncodedList]]  # channel, version, elements
    next_config: RunnableConfig


@dataclass(slots=True)
class _Loaded:
    """Raw rows of one checkpoint, read in one transaction and decoded after it."""

    record: CheckpointRecord
    checkpoint: dict[str, Any]
    blobs: dict[BlobKey, BlobRecord]
    writes: list[WriteRecord]

    @property
    def key(self) -> queries.CheckpointKey:
        return _key_of(self.record)


class SQLSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer storing threads in SQLite, PostgreSQL or MySQL/MariaDB.

    Async methods (``aput``, ``aget_tuple``, ``alist``, …) run on the async engine; the sync
    ones (``put``, ``get_tuple``, ``list``, …) run the same SQL on a sync engine of the same
    database, so a graph can be invoked with ``invoke`` or ``ainvoke``. The schema is created on
    first use. Unchanged channels are stored once per version, and list channels that grow by
    appending (``messages``) store only their new tail; see :mod:`fathom.checkpoints.codec`.

    Example::

        async with SQLSaver.from_url("sqlite:///runs.db") as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(inputs, {"configurable": {"thread_id": run_id},
                                         "metadata": {"run_id": run_id}}, durability="sync")

    Args:
        database: a URL (``sqlite:///path``, a bare path, ``postgresql://…``, ``mysql://…``) or
            a :class:`Database` shared with a :class:`~fathom.checkpoints.runs.RunRegistry`.
            The saver closes a database it opened from a URL, never a shared one.
        serde: serializer for every stored value (LangGraph's ``JsonPlusSerializer`` by default).
        max_chain_depth: tails after which a list channel is stored whole again.

    Raises:
        CheckpointStoreError: from any method, when the database cannot be used.
    """

    def __init__(
        self,
        database: Database | URLLike,
        *,
        serde: SerializerProtocol | None = None,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
    ) -> None:
        super().__init__(serde=serde)
        if not 0 <= max_chain_depth < 1000:  # MySQL's default CTE recursion limit is 1000
            raise ValueError("max_chain_depth must be between 0 and 999")
        self._owns_db = not isinstance(database, Database)
        self.db = database if isinstance(database, Database) else Database(database)
        self.max_chain_depth = max_chain_depth
        self._heads = HeadCache()

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

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> SQLSaver:
        try:
            self.db.setup_sync()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- async API ---------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config``, or the latest of its thread and namespace."""
        loaded = await self.db.read(self._read_one, *_target(config))
        return self._to_tuple(loaded) if loaded is not None else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first; ``filter`` is equality on metadata keys (JSON values)."""
        query = _list_query(config, filter, before)
        after: queries.CheckpointKey | None = None
        while (size := _page_size(limit)) > 0:
            page = await self.db.read(self._read_page, query, after, size)
            for loaded in page:
                yield self._to_tuple(loaded)
            if len(page) < size:
                return
            after, limit = page[-1].key, None if limit is None else limit - len(page)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the values of the channels in ``new_versions``."""
        # Serialization runs on the caller's thread, before the transaction, to keep the
        # transaction (and SQLite's write lock) short.
        prepared = self._prepare_put(config, checkpoint, metadata, new_versions)
        heads = await self.db.write(self._put_rows, prepared)
        self._remember(heads)
        return prepared.next_config

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Store a task's pending writes for the checkpoint in ``config`` (idempotent)."""
        rows, update = self._prepare_writes(config, writes, task_id, task_path)
        if rows:
            await self.db.write(queries.upsert, schema.writes, rows, update=update)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of the thread, in all namespaces."""
        await self.db.write(queries.delete_threads, [str(thread_id)])
        self._heads.forget_threads([str(thread_id)])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose ``metadata["run_id"]`` is listed, with their writes."""
        if run_ids:
            touched = await self.db.write(queries.delete_runs, [str(r) for r in run_ids], self._refs_of)
            self._heads.forget_threads(touched)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another (a new thread)."""
        await self.db.write(queries.copy_thread, str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the latest checkpoint per namespace (``keep_latest``), or delete all (``delete``).

        Blobs still needed by the kept checkpoints, including the bases of their list chains,
        survive. Each thread is pruned in its own transaction.
        """
        ids = _prune_args(thread_ids, strategy)
        if strategy == "delete":
            await self.db.write(queries.delete_threads, ids)
        else:
            for thread_id in ids:
                await self.db.write(queries.prune_keep_latest, thread_id, self._refs_of)
        self._heads.forget_threads(ids)

    # ---- sync API (same SQL on the sync engine) ----------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Sync :meth:`aget_tuple`."""
        loaded = self.db.read_sync(self._read_one, *_target(config))
        return self._to_tuple(loaded) if loaded is not None else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Sync :meth:`alist`."""
        query = _list_query(config, filter, before)
        after: queries.CheckpointKey | None = None
        while (size := _page_size(limit)) > 0:
            page = self.db.read_sync(self._read_page, query, after, size)
            for loaded in page:
                yield self._to_tuple(loaded)
            if len(page) < size:
                return
            after, limit = page[-1].key, None if limit is None else limit - len(page)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Sync :meth:`aput`."""
        prepared = self._prepare_put(config, checkpoint, metadata, new_versions)
        self._remember(self.db.write_sync(self._put_rows, prepared))
        return prepared.next_config

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Sync :meth:`aput_writes`."""
        rows, update = self._prepare_writes(config, writes, task_id, task_path)
        if rows:
            self.db.write_sync(queries.upsert, schema.writes, rows, update=update)

    def delete_thread(self, thread_id: str) -> None:
        """Sync :meth:`adelete_thread`."""
        self.db.write_sync(queries.delete_threads, [str(thread_id)])
        self._heads.forget_threads([str(thread_id)])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync :meth:`adelete_for_runs`."""
        if run_ids:
            touched = self.db.write_sync(queries.delete_runs, [str(r) for r in run_ids], self._refs_of)
            self._heads.forget_threads(touched)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync :meth:`acopy_thread`."""
        self.db.write_sync(queries.copy_thread, str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Sync :meth:`aprune`."""
        ids = _prune_args(thread_ids, strategy)
        if strategy == "delete":
            self.db.write_sync(queries.delete_threads, ids)
        else:
            for thread_id in ids:
                self.db.write_sync(queries.prune_keep_latest, thread_id, self._refs_of)
        self._heads.forget_threads(ids)

    def get_next_version(self, current: str | int | float | None, channel: None = None) -> str:
        """Monotonic string versions, sortable as text, as in LangGraph's own SQL savers."""
        if current is None:
            current_v = 0
        elif isinstance(current, (int, float)):
            current_v = int(current)
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # ---- storing -----------------------------------------------------------------------------

    def _prepare_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> _PreparedPut:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns") or ""
        values = checkpoint["channel_values"]
        # Small primitives ride along in the checkpoint row, as in the official Postgres saver.
        inline = {k: v for k, v in values.items() if _is_inline(v)}
        type_, data = self.serde.dumps_typed({**checkpoint, "channel_values": inline})
        meta = _strip_nul(get_serializable_checkpoint_metadata(config, metadata))
        run_id = meta.get("run_id")
        key = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        blob_rows: list[dict[str, Any]] = []
        lists: list[tuple[str, str, EncodedList]] = []
        for channel, version in new_versions.items():
            if channel in inline:
                continue
            if channel not in values:
                row = {**key, "channel": channel, "version": str(version), "type": EMPTY_TYPE, "blob": None}
                blob_rows.append(row | _NO_CHAIN)
            elif is_incremental(values[channel]):
                lists.append((channel, str(version), encode_list(self.serde, values[channel])))
            else:
                value_type, blob = self.serde.dumps_typed(values[channel])
                row = {**key, "channel": channel, "version": str(version), "type": value_type, "blob": blob}
                blob_rows.append(row | _NO_CHAIN)
        return _PreparedPut(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            is_first=configurable.get("checkpoint_id") is None,
            checkpoint_row={
                **key,
                "checkpoint_id": checkpoint["id"],
                "parent_checkpoint_id": configurable.get("checkpoint_id"),
                "run_id": str(run_id) if run_id is not None else None,
                "type": type_,
                "checkpoint": data,
                "metadata": meta,
            },
            blob_rows=blob_rows,
            lists=lists,
            next_config={"configurable": {**key, "checkpoint_id": checkpoint["id"]}},
        )

    def _put_rows(self, conn: Connection, prepared: _PreparedPut) -> list[tuple[tuple[str, str, str], CachedList]]:
        """The put transaction; returns what to cache once it has committed."""
        stored = []
        for channel, version, encoded in prepared.lists:
            key = (prepared.thread_id, prepared.checkpoint_ns, channel)
            head = self._write_list(conn, key, version, encoded, look_up=not prepared.is_first)
            stored.append((key, CachedList(head, encoded.items)))
        if prepared.blob_rows:
            queries.upsert(conn, schema.blobs, prepared.blob_rows)
        queries.upsert(
            conn, schema.checkpoints, prepared.checkpoint_row, update=("type", "checkpoint", "metadata", "run_id")
        )
        return stored

    def _write_list(
        self, conn: Connection, key: tuple[str, str, str], version: str, encoded: EncodedList, *, look_up: bool
    ) -> ListHead:
        """Store one list version as a tail of the longest stored prefix, or whole."""
        cached = self._heads.get(key)
        if cached is not None and encoded.starts_with(cached.items):
            base, found = (cached.head if cached.head.depth < self.max_chain_depth else None), True
        else:
            base, found = None, False
        if not found and look_up:
            # A new process, a fork, or an edited list: ask the database for a stored prefix.
            candidates = queries.list_heads(conn, *key, max_length=len(encoded))
            base, found = choose_base(encoded, candidates, self.max_chain_depth)
        row = encoded.row(base)
        if base is not None and queries.insert_list_row(conn, _list_values(key, version, row), base.digest):
            return row.head(version)
        # No usable base, or it vanished (deleted elsewhere) since it was cached: store it whole.
        row = encoded.row(None)
        queries.upsert(conn, schema.blobs, _list_values(key, version, row))
        return row.head(version)

    def _remember(self, stored: Iterable[tuple[tuple[str, str, str], CachedList]]) -> None:
        for key, entry in stored:
            self._heads.put(key, entry)

    def _prepare_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        configurable = config["configurable"]
        key = {
            "thread_id": str(configurable["thread_id"]),
            "checkpoint_ns": configurable.get("checkpoint_ns") or "",
            "checkpoint_id": str(configurable["checkpoint_id"]),
            "task_id": task_id,
            "task_path": task_path,
        }
        rows = []
        for idx, (channel, value) in enumerate(writes):
            value_type, blob = self.serde.dumps_typed(value)
            rows.append(
                {**key, "idx": WRITES_IDX_MAP.get(channel, idx), "channel": channel, "type": value_type, "blob": blob}
            )
        # As LangGraph's savers do: special channels (errors, interrupts, …) replace, the rest
        # keep the first write, so a retried task cannot change what was recorded.
        replace = bool(writes) and all(channel in WRITES_IDX_MAP for channel, _ in writes)
        return rows, ("channel", "type", "blob", "task_path") if replace else ()

    # ---- loading -----------------------------------------------------------------------------

    def _read_one(
        self, conn: Connection, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> _Loaded | None:
        found = queries.select_checkpoint(conn, thread_id, checkpoint_ns, checkpoint_id)
        if found is None:
            return None
        record, pending = found
        return self._read_blobs(conn, [record], {_key_of(record): pending})[0]

    def _read_page(
        self, conn: Connection, query: ListQuery, after: queries.CheckpointKey | None, size: int
    ) -> list[_Loaded]:
        records = queries.select_checkpoints(conn, query, after, size)
        return self._read_blobs(conn, records, queries.select_writes(conn, [_key_of(r) for r in records]))

    def _read_blobs(
        self,
        conn: Connection,
        records: Sequence[CheckpointRecord],
        pending: dict[queries.CheckpointKey, list[WriteRecord]],
    ) -> list[_Loaded]:
        """Decode the checkpoint rows (small) and fetch the blobs and chain bases they need."""
        decoded = [self.serde.loads_typed((r.type, r.checkpoint)) for r in records]
        keys = {
            (r.thread_id, r.checkpoint_ns, channel, version)
            for r, checkpoint in zip(records, decoded, strict=True)
            for channel, version in _blob_refs(checkpoint)
        }
        found = queries.select_blobs(conn, keys) if keys else {}
        return [
            _Loaded(r, checkpoint, found, pending.get(_key_of(r), []))
            for r, checkpoint in zip(records, decoded, strict=True)
        ]

    def _to_tuple(self, loaded: _Loaded) -> CheckpointTuple:
        record, checkpoint = loaded.record, loaded.checkpoint
        values = checkpoint["channel_values"]
        for channel, version in _blob_refs(checkpoint):
            blob = loaded.blobs.get((record.thread_id, record.checkpoint_ns, channel, version))
            if blob is not None and blob.type != EMPTY_TYPE:
                values[channel] = self._decode_blob(record, channel, blob, loaded.blobs)
        config = {"configurable": {"thread_id": record.thread_id, "checkpoint_ns": record.checkpoint_ns}}
        pending = sorted(loaded.writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))
        return CheckpointTuple(
            config={"configurable": {**config["configurable"], "checkpoint_id": record.checkpoint_id}},
            checkpoint=checkpoint,  # type: ignore[arg-type]  # decoded from a Checkpoint
            metadata=record.metadata,  # type: ignore[arg-type]
            parent_config=(
                {"configurable": {**config["configurable"], "checkpoint_id": record.parent_checkpoint_id}}
                if record.parent_checkpoint_id
                else None
            ),
            pending_writes=[(w.task_id, w.channel, self.serde.loads_typed((w.type, w.blob))) for w in pending],
        )

    def _decode_blob(
        self, record: CheckpointRecord, channel: str, blob: BlobRecord, found: dict[BlobKey, BlobRecord]
    ) -> Any:
        if blob.type != LIST_TYPE:
            return self.serde.loads_typed((blob.type, blob.blob))
        chunks = [blob.blob]
        while blob.base_version is not None:
            base = found.get((record.thread_id, record.checkpoint_ns, channel, blob.base_version))
            if base is None or len(chunks) > 1000:
                raise CheckpointStoreError(
                    f"{self.db.url}: stored value of channel {channel!r} in thread {record.thread_id!r} "
                    f"is missing its base version {blob.base_version}"
                )
            chunks.append(base.blob)
            blob = base
        return decode_list(self.serde, reversed(chunks))  # type: ignore[arg-type]

    def _refs_of(self, type_: str, data: bytes) -> list[BlobRef]:
        """The blobs a stored checkpoint reads (for garbage collection)."""
        return _blob_refs(self.serde.loads_typed((type_, data)))


def _key_of(record: CheckpointRecord) -> queries.CheckpointKey:
    return (record.thread_id, record.checkpoint_ns, record.checkpoint_id)


def _blob_refs(checkpoint: dict[str, Any]) -> list[BlobRef]:
    inline = checkpoint.get("channel_values") or {}
    return [(ch, str(v)) for ch, v in checkpoint.get("channel_versions", {}).items() if ch not in inline]


def _is_inline(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= INLINE_STR_MAX
    return value is None or isinstance(value, (bool, int, float))


def _strip_nul(value: Any) -> Any:
    """Drop NUL characters, which PostgreSQL refuses in text and JSON, from strings at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strip_nul(v) for v in value]
    return value


def _list_values(key: tuple[str, str, str], version: str, row: ListRow) -> dict[str, Any]:
    thread_id, checkpoint_ns, channel = key
    return {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "channel": channel,
        "version": version,
        "type": LIST_TYPE,
        "blob": row.blob,
        "base_version": row.base_version,
        "length": row.length,
        "digest": row.digest,
        "depth": row.depth,
    }


def _target(config: RunnableConfig) -> tuple[str, str, str | None]:
    configurable = config["configurable"]
    return str(configurable["thread_id"]), configurable.get("checkpoint_ns") or "", get_checkpoint_id(config)


def _list_query(
    config: RunnableConfig | None, filter: dict[str, Any] | None, before: RunnableConfig | None
) -> ListQuery:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    return ListQuery(
        thread_id=str(thread_id) if thread_id is not None else None,
        checkpoint_ns=configurable.get("checkpoint_ns"),
        checkpoint_id=configurable.get("checkpoint_id"),
        metadata=filter or None,
        before=get_checkpoint_id(before) if before is not None else None,
    )


def _page_size(limit: int | None) -> int:
    return PAGE_SIZE if limit is None else min(PAGE_SIZE, max(limit, 0))


def _prune_args(thread_ids: Sequence[str], strategy: str) -> list[str]:
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(f"unknown prune strategy {strategy!r}: use one of {', '.join(PRUNE_STRATEGIES)}")
    return sorted({str(t) for t in thread_ids})
