"""Incremental storage of the growing transcript, and that every checkpoint still loads whole."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from sqlalchemy import func, select

from fathom.store import SQLSaver
from fathom.store.checkpoints.codec import ListEncoder, decode_chain, encode_list, pack
from fathom.store.migrations import blobs, checkpoints
from tests.support.checkpoints import (
    backend_url,
    research_graph,
    research_input,
    run_config,
    saver,
)

__all__ = ["backend_url", "saver"]  # fixtures


async def history(graph: Any, thread_id: str) -> list[tuple[int, dict[str, Any], tuple[str, ...]]]:
    """(step, values, next) of every checkpoint of the thread, newest first."""
    return [
        (s.metadata["step"], s.values, s.next) async for s in graph.aget_state_history(run_config(thread_id))
    ]


async def message_rows(saver: SQLSaver, thread_id: str) -> list[dict[str, Any]]:
    """The stored rows of the ``messages`` channel, oldest (shortest) first."""
    stmt = (
        select(
            blobs.c.version,
            blobs.c.base_version,
            blobs.c.depth,
            blobs.c.length,
            func.coalesce(func.length(blobs.c.blob), 0),
        )
        .where(blobs.c.thread_id == thread_id, blobs.c.channel == "messages")
        .order_by(blobs.c.length, blobs.c.version)
    )
    async with saver.db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [dict(zip(("version", "base", "depth", "length", "bytes"), row, strict=True)) for row in rows]


async def test_every_checkpoint_loads_the_same_state_as_in_memory(saver: SQLSaver) -> None:
    """Time travel: each of the run's checkpoints has exactly the state InMemorySaver has."""
    ours = research_graph().compile(checkpointer=saver)
    reference = research_graph().compile(checkpointer=InMemorySaver())
    for graph in (ours, reference):
        await graph.ainvoke(research_input(budget=12), run_config("run-1"), durability="sync")

    assert await history(ours, "run-1") == await history(reference, "run-1")
    state = await ours.aget_state(run_config("run-1"))
    assert len(state.values["messages"]) == 1 + 2 * 12
    assert state.values["messages"][-1].id == "tool-12"


async def test_sync_invoke_from_a_worker_thread(saver: SQLSaver) -> None:
    """``graph.invoke`` in a thread (the sync path) stores what ``ainvoke`` would."""
    graph = research_graph().compile(checkpointer=saver)
    reference = research_graph().compile(checkpointer=InMemorySaver())
    await asyncio.to_thread(graph.invoke, research_input(budget=6), run_config("sync-run"), durability="sync")
    await reference.ainvoke(research_input(budget=6), run_config("sync-run"), durability="sync")

    assert await history(graph, "sync-run") == await history(reference, "sync-run")
    # and the sync read path sees the async writes' data the same way
    assert [s.values for s in graph.get_state_history(run_config("sync-run"))] == [
        values for _, values, _ in await history(reference, "sync-run")
    ]


async def test_transcript_is_stored_once_and_loads_from_few_rows(saver: SQLSaver) -> None:
    """Each round stores only its new messages, so storage grows linearly with rounds; and every
    ``segment`` tails fold into one row, so the latest state loads from a row per segment."""
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=10), run_config("short"), durability="sync")
    await graph.ainvoke(research_input(budget=40), run_config("long"), durability="sync")

    rows = await message_rows(saver, "long")
    assert rows[0]["base"] is None  # the first version is a snapshot ...
    assert all(r["base"] is not None for r in rows[1:])  # ... every later one builds on another
    stored_short = sum(r["bytes"] for r in await message_rows(saver, "short"))
    stored_long = sum(r["bytes"] for r in rows)
    assert stored_long < 4.5 * stored_short  # four times the rounds (rewriting would cost ~16x)
    final = (await graph.aget_state(run_config("long"))).values["messages"]
    whole = len(pack(encode_list(saver.serde, final).items))
    assert stored_long < 1.05 * whole  # every message is stored once

    by_version = {r["version"]: r for r in rows}
    chain, row = [], rows[-1]  # the longest value: the latest state
    while row is not None:
        chain.append(row)
        row = by_version.get(row["base"])
    assert chain[-1]["base"] is None  # back to the snapshot
    assert len(chain) <= len(rows) // saver.segment + saver.segment + 1, [r["length"] for r in chain]
    prefixes = [r for r in rows if r["bytes"] == 0]
    assert prefixes and all(by_version[r["base"]]["length"] > r["length"] for r in prefixes)


async def test_fork_from_an_old_checkpoint(saver: SQLSaver) -> None:
    """Editing state at an earlier checkpoint branches off; both branches load correctly."""
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=8), run_config("fork"), durability="sync")
    snapshots = [s async for s in graph.aget_state_history(run_config("fork"))]
    round_3 = next(s for s in snapshots if s.values.get("rounds") == 3)

    hint = HumanMessage("focus on 2024", id="hint")
    forked = await graph.aupdate_state(round_3.config, {"messages": [hint], "budget": 5})
    await graph.ainvoke(None, forked, durability="sync")

    latest = (await graph.aget_state(run_config("fork"))).values
    assert [m.id for m in latest["messages"]][:8] == [
        "q",
        "ai-1",
        "tool-1",
        "ai-2",
        "tool-2",
        "ai-3",
        "tool-3",
        "hint",
    ]
    assert latest["rounds"] == 5 and len(latest["messages"]) == 1 + 2 * 5 + 1
    original = await graph.aget_state(round_3.config)
    assert [m.id for m in original.values["messages"]][-1] == "tool-3"
    # the abandoned branch is intact too
    everything = [s.values async for s in graph.aget_state_history(run_config("fork"))]
    old_end = next(values for values in everything if values.get("rounds") == 8)
    assert [m.id for m in old_end["messages"]][-2:] == ["ai-8", "tool-8"] and len(old_end["messages"]) == 17


async def test_edited_transcript_loads_and_reuses_the_shared_prefix(saver: SQLSaver) -> None:
    """Removing a message mid-transcript: stored as a tail of the longest unchanged prefix."""
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=4), run_config("edit"), durability="sync")
    await graph.aupdate_state(run_config("edit"), {"messages": [RemoveMessage(id="tool-2")]})

    ids = [m.id for m in (await graph.aget_state(run_config("edit"))).values["messages"]]
    assert ids == ["q", "ai-1", "tool-1", "ai-2", "ai-3", "tool-3", "ai-4", "tool-4"]
    rows = await message_rows(saver, "edit")
    edited = next(r for r in rows if r["length"] == 8)
    assert next(r for r in rows if r["version"] == edited["base"])["length"] == 3  # [q, ai-1, tool-1]


async def test_rewritten_transcript_is_stored_whole(saver: SQLSaver) -> None:
    """A transcript that shares no prefix with any stored version becomes a new snapshot."""
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=2), run_config("rewrite"), durability="sync")
    state = await graph.aget_state(run_config("rewrite"))
    removals = [RemoveMessage(id=m.id) for m in state.values["messages"]]
    await graph.aupdate_state(run_config("rewrite"), {"messages": [*removals, HumanMessage("new", id="n")]})

    assert [m.id for m in (await graph.aget_state(run_config("rewrite"))).values["messages"]] == ["n"]
    singles = [r for r in await message_rows(saver, "rewrite") if r["length"] == 1]  # [q] and [n]
    assert len(singles) == 2 and all(r["base"] is None for r in singles)


async def test_copy_thread_survives_deleting_the_source(saver: SQLSaver) -> None:
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=6), run_config("source"), durability="sync")
    expected = await history(graph, "source")

    await saver.acopy_thread("source", "copy")
    await saver.adelete_thread("source")

    assert await history(graph, "source") == []
    assert await history(graph, "copy") == expected
    await graph.ainvoke({"budget": 8, "status": "running"}, run_config("copy", "more"), durability="sync")
    assert (await graph.aget_state(run_config("copy"))).values["rounds"] == 8


async def test_prune_keeps_what_the_latest_checkpoint_needs(saver: SQLSaver) -> None:
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=6), run_config("pruned"), durability="sync")
    before = (await graph.aget_state(run_config("pruned"))).values

    await saver.aprune(["pruned"], strategy="keep_latest")

    assert len(await history(graph, "pruned")) == 1
    assert (await graph.aget_state(run_config("pruned"))).values == before
    # the run can go on from the pruned thread
    await graph.ainvoke({"budget": 9, "status": "running"}, run_config("pruned", "more"), durability="sync")
    assert len((await graph.aget_state(run_config("pruned"))).values["messages"]) == 1 + 2 * 9
    async with saver.db.engine.connect() as conn:
        orphans = await conn.scalar(
            select(func.count())
            .select_from(blobs)
            .where(blobs.c.thread_id == "pruned", blobs.c.channel != "messages")
        )
    assert orphans <= 8  # only the latest versions of the small channels remain


async def test_delete_for_runs_keeps_later_runs_loadable(saver: SQLSaver) -> None:
    """Deleting the first run of a thread must not break the chains the second run builds on."""
    graph = research_graph().compile(checkpointer=saver)
    await graph.ainvoke(research_input(budget=3), run_config("thread", "run-a"), durability="sync")
    await graph.ainvoke({"budget": 6, "status": "running"}, run_config("thread", "run-b"), durability="sync")
    expected = [h for h in await history(graph, "thread")]

    await saver.adelete_for_runs(["run-a"])

    remaining = await history(graph, "thread")
    assert remaining == [h for h in expected if h[0] > 3]  # run-b's steps 4..7, parent-linked
    assert remaining[0][1]["rounds"] == 6 and len(remaining[0][1]["messages"]) == 13


async def test_a_new_saver_extends_the_stored_chain(backend_url: str) -> None:
    """After a restart (empty cache), resuming a run still stores only the new tail."""
    async with SQLSaver.from_url(backend_url) as first:
        await (
            research_graph()
            .compile(checkpointer=first)
            .ainvoke(research_input(budget=3), run_config("resumed"), durability="sync")
        )
    async with SQLSaver.from_url(backend_url) as second:
        graph = research_graph().compile(checkpointer=second)
        await graph.ainvoke(
            {"budget": 5, "status": "running"}, run_config("resumed", "more"), durability="sync"
        )
        rows = await message_rows(second, "resumed")
        assert len((await graph.aget_state(run_config("resumed"))).values["messages"]) == 11
    assert [r["base"] is None for r in rows] == [True] + [False] * (len(rows) - 1)


async def test_chain_depth_is_bounded(backend_url: str) -> None:
    async with SQLSaver.from_url(backend_url, max_chain_depth=4) as saver:
        graph = research_graph().compile(checkpointer=saver)
        reference = research_graph().compile(checkpointer=InMemorySaver())
        for g in (graph, reference):
            await g.ainvoke(research_input(budget=14), run_config("deep"), durability="sync")
        rows = await message_rows(saver, "deep")
        assert max(r["depth"] for r in rows) == 4
        assert sum(r["depth"] == 0 for r in rows) == 3  # snapshots restart the chain
        assert await history(graph, "deep") == await history(reference, "deep")


@pytest.mark.parametrize(
    "value", [[], [None, 1, "two", {"three": [3]}], ["x" * 2000], [AIMessage("hi", id="m")]]
)
async def test_list_values_round_trip(saver: SQLSaver, value: list[Any]) -> None:
    """Lists of any element type go through the element-wise path unchanged."""
    config = {"configurable": {"thread_id": "lists", "checkpoint_ns": ""}}
    checkpoint = {
        "v": 4,
        "id": "1f0a0000-0000-6000-8000-000000000001",
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": {"items": value},
        "channel_versions": {"items": saver.get_next_version(None, None)},
        "versions_seen": {},
        "updated_channels": ["items"],
    }
    stored = await saver.aput(
        config, checkpoint, {"source": "input", "step": -1}, checkpoint["channel_versions"]
    )
    loaded = await saver.aget_tuple(stored)
    assert loaded is not None and loaded.checkpoint["channel_values"] == {"items": value}
    async with saver.db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(checkpoints)) == 1


class _OwnSerde:
    """A serializer that is not LangGraph's (as a user may plug in), delegating the bytes."""

    def __init__(self) -> None:
        self._inner = JsonPlusSerializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, data = self._inner.dumps_typed(obj)
        return f"own+{type_}", data

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        return self._inner.loads_typed((type_.removeprefix("own+"), payload))


@pytest.mark.parametrize("length", [0, 1, 15, 16, 65535, 65536])
@pytest.mark.parametrize("serde", [JsonPlusSerializer(), _OwnSerde()], ids=["jsonplus", "own"])
def test_a_list_decodes_from_any_split_into_tails(length: int, serde: Any) -> None:
    """Tails decode to the original list whatever its length (msgpack's array header changes
    size at 16 and 65536 elements), the split, or the serializer."""
    value: list[Any] = [{"n": i} if i % 3 else f"s{i}" for i in range(length)]
    encoded = encode_list(serde, value).items
    cuts = sorted({0, length // 3, length // 2, length})
    rows = [(pack(encoded[a:b]), b) for a, b in itertools.pairwise(cuts)]
    assert decode_chain(serde, rows) == value


def test_a_list_with_elements_that_are_not_msgpack_decodes_element_by_element() -> None:
    value = [None, b"raw", AIMessage("hi", id="m"), bytearray(b"buf")]
    serde = JsonPlusSerializer()
    assert decode_chain(serde, [(pack(encode_list(serde, value).items), len(value))]) == value


@pytest.mark.parametrize("segment", [1, 2, 3])
async def test_folded_segments_keep_every_checkpoint_and_fork_loadable(backend_url: str, segment: int) -> None:
    """With tails folded every ``segment`` rounds, time travel, a fork from a checkpoint whose
    version became a prefix row, a restart mid-segment, and pruning all load what
    InMemorySaver does."""
    async with SQLSaver.from_url(backend_url, segment=segment) as saver:
        graph = research_graph().compile(checkpointer=saver)
        reference = research_graph().compile(checkpointer=InMemorySaver())
        for g in (graph, reference):
            await g.ainvoke(research_input(budget=9), run_config("folded"), durability="sync")
        assert await history(graph, "folded") == await history(reference, "folded")
        assert any(r["bytes"] == 0 for r in await message_rows(saver, "folded"))  # prefix rows exist

        for g in (graph, reference):
            round_3 = [s async for s in g.aget_state_history(run_config("folded")) if s.values.get("rounds") == 3][0]
            forked = await g.aupdate_state(round_3.config, {"messages": [HumanMessage("hint", id="hint")], "budget": 6})
            await g.ainvoke(None, forked, durability="sync")
        assert await history(graph, "folded") == await history(reference, "folded")

    async with SQLSaver.from_url(backend_url, segment=segment) as restarted:  # an empty cache
        graph = research_graph().compile(checkpointer=restarted)
        for g in (graph, reference):
            await g.ainvoke({"budget": 12, "status": "running"}, run_config("folded"), durability="sync")
        assert await history(graph, "folded") == await history(reference, "folded")

        latest = (await graph.aget_state(run_config("folded"))).values
        await restarted.aprune(["folded"], strategy="keep_latest")
        assert (await graph.aget_state(run_config("folded"))).values == latest


def test_a_prefix_row_cuts_its_base() -> None:
    """A chain can run through a prefix row (a fork off a folded version): it keeps the first
    ``length`` elements of its base, then the next tail appends."""
    serde = JsonPlusSerializer()
    items = encode_list(serde, list(range(10))).items
    extra = encode_list(serde, ["fork"]).items
    rows = [(pack(items[:2]), 2), (pack(items[2:]), 10), (None, 4), (pack(extra), 5)]
    assert decode_chain(serde, rows) == [0, 1, 2, 3, "fork"]


class _CountingSerde(JsonPlusSerializer):
    """LangGraph's serializer, counting the values it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded = 0

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.encoded += 1
        return super().dumps_typed(obj)


def test_a_put_encodes_only_new_or_changed_elements() -> None:
    """Each put encodes the elements appended since the last one, plus any changed in place
    since, and its bytes are always those of encoding the whole list afresh."""
    serde, encoder, key = _CountingSerde(), ListEncoder(), ("t", "", "messages")
    question = HumanMessage("q", id="q")
    turn = AIMessage(
        "calls", id="a", tool_calls=[{"name": "query_url", "args": {"url": "u1"}, "id": "c1"}],
        additional_kwargs={"call_order": ["c1"]},
    )
    source = {"url": "u1", "title": ""}
    value = [question, turn, source]

    def encode(expected_new: int) -> None:
        before = serde.encoded
        items = encoder.encode(serde, key, value).items
        assert serde.encoded - before == expected_new
        assert items == encode_list(JsonPlusSerializer(), value).items

    encode(3)
    value = [*value, ToolMessage("page", tool_call_id="c1", id="t")]  # as add_messages hands it on
    encode(1)
    encode(0)
    turn.content = "rewritten"  # a field reassigned
    source["title"] = "Page"  # a dict changed in place
    encode(2)
    turn.tool_calls[0]["args"]["url"] = "u2"  # deep inside a field
    turn.additional_kwargs["call_order"].append("c2")
    encode(1)
    value = [*value[:2], AIMessage("calls", id="a"), *value[3:]]  # an equal message, another object
    encode(1)
    value.append({"tags": {"a", "b"}})  # a set is not compared (not a plain value): encoded every time
    encode(1)
    encode(1)
    assert len(encoder.encode(_CountingSerde(), key, value).items) == len(value)  # another serde: anew


async def test_a_message_changed_in_place_is_stored_changed(saver: SQLSaver) -> None:
    """A message mutated after a checkpoint (not LangGraph style, but possible) is stored as it
    is at the next one; the earlier checkpoint keeps what it had."""
    turn = AIMessage("draft", id="a", additional_kwargs={"notes": ["x"]})
    first = [HumanMessage("q", id="q"), turn]
    config = await _put_items(saver, {"configurable": {"thread_id": "mut", "checkpoint_ns": ""}}, first, 1)
    turn.content = "final"
    turn.additional_kwargs["notes"].append("y")
    second = [*first, HumanMessage("more", id="m")]
    latest = await _put_items(saver, config, second, 2)

    old, new = await saver.aget_tuple(config), await saver.aget_tuple(latest)
    assert old is not None and new is not None
    assert old.checkpoint["channel_values"]["items"][1] == AIMessage("draft", id="a", additional_kwargs={"notes": ["x"]})
    assert new.checkpoint["channel_values"]["items"] == second
    assert new.checkpoint["channel_values"]["items"][1].content == "final"


async def _put_items(saver: SQLSaver, config: dict[str, Any], items: list[Any], n: int) -> Any:
    version = saver.get_next_version(None if n == 1 else n - 1, None)
    checkpoint = {
        "v": 4,
        "id": f"1f0a0000-0000-6000-8000-00000000000{n}",
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": {"items": items},
        "channel_versions": {"items": version},
        "versions_seen": {},
        "updated_channels": ["items"],
    }
    return await saver.aput(config, checkpoint, {"source": "loop", "step": n}, {"items": version})
