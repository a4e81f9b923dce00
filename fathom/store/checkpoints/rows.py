"""Converting LangGraph checkpoints, metadata and writes to table rows, and back.

Pure functions of a serializer: the saver passes its current ``serde`` on every call, because
LangGraph's ``with_allowlist`` clones a saver with a different one.

A checkpoint row holds the serde-encoded checkpoint with only its small primitive channel values
inline (as the official Postgres saver does); the other values live in blob rows keyed by
``(thread, ns, channel, version)``, written only for channels in ``new_versions``. List values
take the incremental path of :mod:`fathom.store.checkpoints.codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from fathom.store.checkpoints.codec import (
    EMPTY_TYPE,
    LIST_TYPE,
    EncodedList,
    ListEncoder,
    ListRow,
    decode_chain,
    encode_list,
    is_incremental,
)
from fathom.store.checkpoints.queries import (
    BlobKey,
    BlobRecord,
    BlobRef,
    CheckpointKey,
    CheckpointRecord,
    ListQuery,
    WriteRecord,
)

INLINE_STR_MAX = 512
"""Strings up to this length stay inside the checkpoint row instead of getting a blob row."""
MAX_CHAIN_ROWS = 1000  # a chain longer than this is corrupt (the saver caps depth below it)

_NO_CHAIN = {"base_version": None, "length": None, "digest": None, "depth": None}


class BrokenChainError(LookupError):
    """A list value's base version is missing: the rows were deleted under it."""


@dataclass(slots=True)
class PreparedPut:
    """A checkpoint serialized for storage, ready for its transaction."""

    thread_id: str
    checkpoint_ns: str
    is_first: bool  # no parent: nothing earlier in this thread/namespace to extend
    checkpoint_row: dict[str, Any]
    blob_rows: list[dict[str, Any]]
    lists: list[tuple[str, str, EncodedList]]  # channel, version, elements
    next_config: RunnableConfig


@dataclass(slots=True)
class Loaded:
    """Raw rows of one checkpoint, read in one transaction and decoded after it."""

    record: CheckpointRecord
    checkpoint: dict[str, Any]  # decoded, with only the inline channel values so far
    blobs: dict[BlobKey, BlobRecord]  # shared by the checkpoints of one read
    writes: list[WriteRecord]

    @property
    def key(self) -> CheckpointKey:
        return key_of(self.record)


def prepare_put(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    *,
    encoder: ListEncoder | None = None,
) -> PreparedPut:
    """Serialize a checkpoint and the values of the channels in ``new_versions``.

    List values are encoded by ``encoder`` (which reuses the bytes of elements it encoded for
    the channel's previous value), or from scratch without one.
    """
    configurable = config["configurable"]
    thread_id = str(configurable["thread_id"])
    checkpoint_ns = configurable.get("checkpoint_ns") or ""
    parent_id = configurable.get("checkpoint_id")
    values = checkpoint["channel_values"]
    inline = {k: v for k, v in values.items() if _is_inline(v)}
    type_, data = serde.dumps_typed({**checkpoint, "channel_values": inline})
    meta = strip_nul(get_serializable_checkpoint_metadata(config, metadata))
    run_id = meta.get("run_id")
    key = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    blob_rows: list[dict[str, Any]] = []
    lists: list[tuple[str, str, EncodedList]] = []
    for channel, version in new_versions.items():
        if channel in inline:
            continue
        row = {**key, "channel": channel, "version": str(version)}
        if channel not in values:
            blob_rows.append(row | {"type": EMPTY_TYPE, "blob": None} | _NO_CHAIN)
        elif is_incremental(value := values[channel]):
            encoded = (
                encoder.encode(serde, (thread_id, checkpoint_ns, channel), value)
                if encoder is not None
                else encode_list(serde, value)
            )
            lists.append((channel, str(version), encoded))
        else:
            value_type, blob = serde.dumps_typed(values[channel])
            blob_rows.append(row | {"type": value_type, "blob": blob} | _NO_CHAIN)
    return PreparedPut(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        is_first=parent_id is None,
        checkpoint_row={
            **key,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": parent_id,
            "run_id": str(run_id) if run_id is not None else None,
            "type": type_,
            "checkpoint": data,
            "metadata": meta,
        },
        blob_rows=blob_rows,
        lists=lists,
        next_config={"configurable": {**key, "checkpoint_id": checkpoint["id"]}},
    )


def list_row(key: tuple[str, str, str], version: str, row: ListRow) -> dict[str, Any]:
    """The blob row of one list version."""
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


def prepare_writes(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Rows for a task's pending writes, and the columns a clash overwrites (none: keep the first).

    As in LangGraph's own savers, writes made only of special channels (errors, interrupts, …)
    replace earlier ones; other writes keep the first copy, so a retried task cannot change
    what was recorded.
    """
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
        value_type, blob = serde.dumps_typed(value)
        rows.append(
            {
                **key,
                "idx": WRITES_IDX_MAP.get(channel, idx),
                "channel": channel,
                "type": value_type,
                "blob": blob,
            }
        )
    replace = bool(writes) and all(channel in WRITES_IDX_MAP for channel, _ in writes)
    return rows, ("channel", "type", "blob", "task_path") if replace else ()


def to_tuple(serde: SerializerProtocol, loaded: Loaded) -> CheckpointTuple:
    """Decode a loaded checkpoint into the tuple LangGraph expects.

    Raises:
        BrokenChainError: a list value's chain is missing a row.
    """
    record, checkpoint = loaded.record, loaded.checkpoint
    values = checkpoint["channel_values"]
    for channel, version in blob_refs(checkpoint):
        blob = loaded.blobs.get((record.thread_id, record.checkpoint_ns, channel, version))
        if blob is None or blob.type == EMPTY_TYPE:
            continue
        chain = _chain(loaded.blobs, record, channel, version)
        if chain is None:
            raise BrokenChainError(
                f"stored value of channel {channel!r} in thread {record.thread_id!r} is missing a base version"
            )
        values[channel] = _decode_blob(serde, chain)
    where = {"thread_id": record.thread_id, "checkpoint_ns": record.checkpoint_ns}
    pending = sorted(loaded.writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))
    return CheckpointTuple(
        config={"configurable": {**where, "checkpoint_id": record.checkpoint_id}},
        checkpoint=checkpoint,  # type: ignore[arg-type]  # decoded from a Checkpoint
        metadata=record.metadata,  # type: ignore[arg-type]
        parent_config=(
            {"configurable": {**where, "checkpoint_id": record.parent_checkpoint_id}}
            if record.parent_checkpoint_id
            else None
        ),
        pending_writes=[(w.task_id, w.channel, serde.loads_typed((w.type, w.blob))) for w in pending],
    )


def is_complete(loaded: Loaded) -> bool:
    """Whether every blob row the checkpoint reads, and every base of its list chains, was loaded.

    A blob row's value never changes once written (folding only turns a tail into a prefix row
    of the same value), rows only get deleted; so rows read by separate statements describe one
    state unless a delete or prune removed some in between, which this detects.
    """
    record = loaded.record
    refs = blob_refs(loaded.checkpoint)
    return all(_chain(loaded.blobs, record, channel, version) is not None for channel, version in refs)


def _chain(
    found: dict[BlobKey, BlobRecord], record: CheckpointRecord, channel: str, version: str
) -> list[BlobRecord] | None:
    """The rows of a stored value, itself first and its snapshot last; None if one is missing
    (or the links run in a cycle or past ``MAX_CHAIN_ROWS``: a corrupt chain)."""
    chain: list[BlobRecord] = []
    while len(chain) < MAX_CHAIN_ROWS:
        row = found.get((record.thread_id, record.checkpoint_ns, channel, version))
        if row is None:
            return None
        chain.append(row)
        if row.base_version is None:
            return chain
        version = row.base_version
    return None


def _decode_blob(serde: SerializerProtocol, chain: list[BlobRecord]) -> Any:
    if chain[0].type != LIST_TYPE:
        return serde.loads_typed((chain[0].type, chain[0].blob or b""))
    return decode_chain(serde, [(row.blob, row.length) for row in reversed(chain)])


def key_of(record: CheckpointRecord) -> CheckpointKey:
    return (record.thread_id, record.checkpoint_ns, record.checkpoint_id)


def blob_refs(checkpoint: dict[str, Any]) -> list[BlobRef]:
    """The (channel, version) blob rows a decoded checkpoint reads: versions not stored inline."""
    inline = checkpoint.get("channel_values") or {}
    return [(ch, str(v)) for ch, v in checkpoint.get("channel_versions", {}).items() if ch not in inline]


def strip_nul(value: Any) -> Any:
    """Drop NUL characters, which PostgreSQL refuses in text and JSON, from strings at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strip_nul(v) for v in value]
    return value


def target(config: RunnableConfig) -> tuple[str, str, str | None]:
    """(thread_id, checkpoint_ns, checkpoint_id or None) named by a config."""
    configurable = config["configurable"]
    return str(configurable["thread_id"]), configurable.get("checkpoint_ns") or "", get_checkpoint_id(config)


def list_query(
    config: RunnableConfig | None, filter: dict[str, Any] | None, before: RunnableConfig | None
) -> ListQuery:
    """What ``alist(config, filter=, before=)`` selects."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    return ListQuery(
        thread_id=str(thread_id) if thread_id is not None else None,
        checkpoint_ns=configurable.get("checkpoint_ns"),
        checkpoint_id=configurable.get("checkpoint_id"),
        metadata=filter or None,
        before=get_checkpoint_id(before) if before is not None else None,
    )


def _is_inline(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= INLINE_STR_MAX
    return value is None or isinstance(value, (bool, int, float))
