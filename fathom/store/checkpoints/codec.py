"""Incremental storage of growing list channels, such as the ``messages`` transcript.

A research run appends to ``messages`` every round, and LangGraph hands the saver the whole list
each time. Stored whole, round ``k`` costs ``O(k)`` bytes and a run costs ``O(k²)``. Instead, each
element is serialized on its own with the saver's serde, and a list version is stored as

- a *snapshot*: every element, or
- a *tail*: only the elements after the prefix that equals an earlier stored version of the same
  channel in the same thread and namespace (its ``base_version``).

Prefixes are compared on content, so any earlier version is a valid base, whatever branch (fork,
time travel) it came from. In the common case the saver still holds the elements of the version
it stored last and compares bytes; otherwise each stored version carries a chained digest of its
elements (``d_k = H(d_{k-1} + element_k)``), which a new value's prefix must reproduce. Chaining
lets a tail's digest be computed from its base's digest and the tail alone. A chain is cut by a
new snapshot after ``max_depth`` links, so a load reads at most that many rows and a recursive
query stays within MySQL's default recursion limit of 1000.

Chains are also kept short without storing anything twice: every ``segment`` tails, the saver
stores the next version as one tail of the segment's root (everything appended since) and turns
the segment's tails into *prefix rows*: no blob, their base the new version, their value its
first ``length`` elements. A load then reads a row per segment, not one per round.

A serializer that does not encode equal values to equal bytes (an ``EncryptedSerializer`` with
random nonces) never finds a matching prefix across processes: every version is then a snapshot,
which is still correct, just not incremental.

Encoding is incremental too (:class:`ListEncoder`): a reducer such as ``add_messages`` builds
each new list from the previous one's element objects, so the saver keeps each element's bytes
and encodes only the elements it has not seen (or that changed since), not the whole transcript
at every checkpoint.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

LIST_TYPE = "fathom.list"
"""Blob type of a list version: ``blob`` holds framed ``(type, bytes)`` elements."""
EMPTY_TYPE = "empty"
"""Blob type of a channel that has a version but no value (as in the official savers)."""

_FRAME = struct.Struct("<HQ")  # element type length, element byte length


@dataclass(frozen=True, slots=True)
class ListHead:
    """What the store knows about one stored version of a list channel."""

    version: str
    length: int
    digest: str
    depth: int


@dataclass(frozen=True, slots=True)
class ListRow:
    """The blob-row fields of one list version, as a snapshot or as a tail of ``base_version``."""

    blob: bytes
    base_version: str | None
    length: int
    digest: str
    depth: int

    def head(self, version: str) -> ListHead:
        return ListHead(version, self.length, self.digest, self.depth)


class EncodedList:
    """A list value as serde-typed elements; digests of its prefixes are computed on demand."""

    __slots__ = ("_digests", "items")

    def __init__(self, items: list[tuple[str, bytes]]) -> None:
        self.items = items
        self._digests: list[str] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def digest(self, length: int) -> str:
        """The chained digest of the first ``length`` elements."""
        if self._digests is None:
            self._digests = _chain(EMPTY_DIGEST, self.items)
        return self._digests[length]

    def starts_with(self, items: Sequence[tuple[str, bytes]]) -> bool:
        """Whether this list begins with ``items`` (a non-empty prefix), compared bytewise."""
        return 0 < len(items) <= len(self.items) and self.items[: len(items)] == items

    def extends(self, head: ListHead) -> bool:
        """Whether ``head``'s value is a non-empty prefix of this list, by digest."""
        return 0 < head.length <= len(self.items) and self.digest(head.length) == head.digest

    def row(self, base: ListHead | None) -> ListRow:
        """The row storing this list: the tail after ``base``, or a snapshot when ``base`` is None.

        ``base`` must be a verified prefix (:meth:`starts_with` or :meth:`extends`).
        """
        start = base.length if base is not None else 0
        if self._digests is not None:
            digest = self._digests[-1]
        else:  # hash only the tail: the base's digest already covers the prefix
            digest = _chain(base.digest if base is not None else EMPTY_DIGEST, self.items[start:])[-1]
        return ListRow(
            blob=pack(self.items[start:]),
            base_version=base.version if base is not None else None,
            length=len(self.items),
            digest=digest,
            depth=base.depth + 1 if base is not None else 0,
        )


EMPTY_DIGEST = hashlib.blake2b(digest_size=16).hexdigest()


def _chain(start: str, items: Iterable[tuple[str, bytes]]) -> list[str]:
    """``[start, d_1, d_2, …]`` with ``d_k = H(d_{k-1}, type_k, bytes_k)``."""
    digests = [start]
    previous = bytes.fromhex(start)
    for type_, data in items:
        name = type_.encode()
        hasher = hashlib.blake2b(previous, digest_size=16)
        hasher.update(_FRAME.pack(len(name), len(data)))
        hasher.update(name)
        hasher.update(data)
        previous = hasher.digest()
        digests.append(previous.hex())
    return digests


def is_incremental(value: Any) -> bool:
    """Lists (exactly ``list``, not subclasses a serde may treat specially) go element-wise."""
    return type(value) is list


def encode_list(serde: SerializerProtocol, value: list[Any]) -> EncodedList:
    """Serialize each element with ``serde`` (``dumps_typed``)."""
    return EncodedList([serde.dumps_typed(item) for item in value])


class _Unsupported(Exception):
    """A value holds something :func:`_copy_plain` cannot copy (so its changes cannot be seen)."""


_LEAVES = frozenset({str, bytes, int, float, bool, type(None)})  # immutable: kept, not copied


def _copy_plain(value: Any) -> Any:
    """A copy of a plain value's containers (dicts, lists, tuples), sharing its immutable leaves.

    Raises:
        _Unsupported: the value holds anything else (a model, a set, a subclass of a leaf type),
            whose in-place changes an equality test against this copy could miss.
    """
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:
        return {key: _copy_plain(item) for key, item in value.items()}
    if kind is list:
        return [_copy_plain(item) for item in value]
    if kind is tuple:
        return tuple(_copy_plain(item) for item in value)
    raise _Unsupported


_MODEL, _PLAIN, _OPAQUE = "model", "plain", "opaque"  # how an element's state is compared


@dataclass(slots=True)
class _Encoded:
    """One element as last encoded: the object (kept alive, so its ``id`` is not reused), its
    bytes, and a copy of its state then: a pydantic model's fields and extra fields, a plain
    value itself; an opaque element has none and is encoded every time."""

    element: Any
    item: tuple[str, bytes]
    kind: str
    state: Any = None
    extra: Any = None

    def holds(self, element: Any) -> bool:
        """Whether ``element`` is this one, as it was when encoded."""
        if self.element is not element:
            return False
        if self.kind is _MODEL:
            return bool(element.__dict__ == self.state and element.__pydantic_extra__ == self.extra)
        return self.kind is _PLAIN and bool(element == self.state)


def _encoded(serde: SerializerProtocol, element: Any) -> _Encoded:
    item = serde.dumps_typed(element)
    try:
        if isinstance(element, BaseModel):
            return _Encoded(element, item, _MODEL, _copy_plain(element.__dict__), _copy_plain(element.__pydantic_extra__))
        return _Encoded(element, item, _PLAIN, _copy_plain(element))
    except _Unsupported:
        return _Encoded(element, item, _OPAQUE)


@dataclass(slots=True)
class _Encodings:
    serde: SerializerProtocol
    by_id: dict[int, _Encoded]


V = TypeVar("V")


class ThreadLRU(Generic[V]):
    """A small thread-safe LRU of per ``(thread, ns, channel)`` entries, least recent dropped."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, str], V] = OrderedDict()
        self._lock = threading.Lock()  # the sync path runs in LangGraph's worker threads

    def get(self, key: tuple[str, str, str]) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[str, str, str], entry: V) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget_threads(self, thread_ids: Iterable[str]) -> None:
        doomed = set(thread_ids)
        with self._lock:
            for key in [k for k in self._entries if k[0] in doomed]:
                del self._entries[key]


class ListEncoder:
    """:func:`encode_list` that reuses the bytes of elements encoded for the channel's last value.

    LangGraph hands the saver the whole list at every checkpoint, but ``add_messages`` builds it
    from the previous list's message objects, so re-encoding them all (a pydantic dump and a
    msgpack pass each) made a put cost ``O(transcript)``. An element's earlier bytes are reused
    only if it is the same object and its state still compares equal to a copy taken when it was
    encoded, so a message changed in place since is encoded again; a change that leaves it equal
    (``1`` to ``1.0``) keeps bytes that decode to an equal value. Only pydantic models and dicts,
    lists and tuples of strings, bytes, numbers and None are compared that way; any other element
    is encoded every time, as are all elements for a different serde (``with_allowlist``).

    Per ``(thread, ns, channel)`` it keeps the last value's elements (the state holds them
    anyway), their copies (which share the strings) and bytes (shared with :class:`HeadCache`).
    """

    def __init__(self, size: int = 64) -> None:
        self._last: ThreadLRU[_Encodings] = ThreadLRU(size)

    def encode(self, serde: SerializerProtocol, key: tuple[str, str, str], value: list[Any]) -> EncodedList:
        """``encode_list(serde, value)``, encoding only the elements not seen unchanged before."""
        last = self._last.get(key)
        seen = last.by_id if last is not None and last.serde is serde else {}
        by_id: dict[int, _Encoded] = {}
        items = []
        for element in value:
            known = seen.get(ident := id(element))
            if known is None or not known.holds(element):
                known = _encoded(serde, element)
            by_id[ident] = known
            items.append(known.item)
        self._last.put(key, _Encodings(serde, by_id))
        return EncodedList(items)

    def forget_threads(self, thread_ids: Iterable[str]) -> None:
        self._last.forget_threads(thread_ids)


def choose_base(
    encoded: EncodedList, candidates: Iterable[ListHead], max_depth: int
) -> tuple[ListHead | None, bool]:
    """Pick the base for ``encoded`` among ``candidates`` (best first).

    Returns ``(base, found)``: ``found`` says a candidate matched at all; ``base`` is None when
    none matched or when the longest match already ends a ``max_depth`` chain, in which case a
    snapshot restarts the chain. A shorter match is deliberately not used then: every later
    version would be stored as an ever longer tail of it.
    """
    for head in candidates:
        if encoded.extends(head):
            return usable_base(head, max_depth), True
    return None, False


def usable_base(head: ListHead, max_depth: int) -> ListHead | None:
    """``head``, unless it already ends a ``max_depth`` chain (the next version is a snapshot)."""
    return head if head.depth < max_depth else None


def pack(items: Sequence[tuple[str, bytes]]) -> bytes:
    """Frame serde-typed elements into one blob."""
    return ormsgpack.packb(items)


def decode_chain(serde: SerializerProtocol, rows: Iterable[tuple[bytes | None, int | None]]) -> list[Any]:
    """Rebuild a list from the ``(blob, length)`` rows of its chain, root (a snapshot) first.

    Each row keeps the first ``length - len(tail)`` elements of the value built so far and
    appends its tail: for a tail row that is the whole base, for a prefix row (no blob, see
    :mod:`fathom.store.checkpoints.saver`) a cut of its base.
    """
    items: list[list[Any]] = []  # [type, bytes] pairs as ormsgpack returns them
    for blob, length in rows:
        tail = ormsgpack.unpackb(blob) if blob is not None else []
        if length is not None:
            del items[max(length - len(tail), 0) :]
        items.extend(tail)
    if isinstance(serde, JsonPlusSerializer) and all(type_ == "msgpack" for type_, _ in items):
        # A msgpack array is its header followed by its elements' encodings, so LangGraph's
        # serializer decodes them in one call, exactly as it would the list stored whole.
        array = b"".join([_msgpack_array_header(len(items)), *(data for _, data in items)])
        return serde.loads_typed(("msgpack", array))  # type: ignore[no-any-return]
    return [serde.loads_typed((type_, data)) for type_, data in items]


def _msgpack_array_header(length: int) -> bytes:
    if length < 16:
        return bytes([0x90 | length])
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class CachedList:
    """A stored list version and its elements, as this process wrote them.

    ``root`` is the row its chain was last folded onto (see :meth:`SQLSaver._write_list`): a
    snapshot, a folded tail, or a base found in the database; ``since_root`` are the tails
    this process stored after it, ``head`` last (empty when ``head`` is the root).
    """

    head: ListHead
    items: list[tuple[str, bytes]]
    root: ListHead
    since_root: tuple[ListHead, ...] = ()


class HeadCache(ThreadLRU[CachedList]):
    """The last list version this process stored per ``(thread, ns, channel)``, with its elements.

    It spares a query and a full re-hash per checkpoint: the next version of a growing list
    almost always extends the last one, which a bytewise prefix comparison confirms. It is only
    a hint; the saver checks in the write transaction that the base row still exists with the
    same digest, so a deletion by another process cannot leave a tail without its base. The
    elements make entries heavy, hence the small default size (one entry per running thread).
    """
