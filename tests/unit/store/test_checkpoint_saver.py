"""The saver's API as a LangGraph user meets it, on every backend."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from sqlalchemy import create_engine, text

from fathom.store import SQLSaver, connect
from fathom.store.checkpoints import maintenance, queries
from tests.support.checkpoints import (
    backend_url,
    research_graph,
    research_input,
    run_config,
    saver,
)

__all__ = ["backend_url", "saver"]  # fixtures


def checkpoint(values: dict[str, Any] | None = None, saver: SQLSaver | None = None) -> Checkpoint:
    cp = empty_checkpoint()
    if values:
        versions = {k: (saver.get_next_version(None, None) if saver else 1) for k in values}
        cp["channel_values"], cp["channel_versions"] = dict(values), versions
    return cp


async def put(
    saver: SQLSaver,
    thread_id: str,
    metadata: dict[str, Any],
    parent: dict[str, Any] | None = None,
    **values: Any,
) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    cp = checkpoint(values, saver)
    return await saver.aput(config, cp, metadata, cp["channel_versions"])


async def test_metadata_filters_compare_json_values(saver: SQLSaver) -> None:
    await put(saver, "t", {"source": "loop", "step": 1, "score": 0.5, "flag": True, "who": {"name": "ada"}})
    await put(saver, "t", {"source": "loop", "step": "1", "flag": False})
    await put(saver, "u", {"source": "input", "step": 1, "run_id": "r-1"})

    async def count(config: dict[str, Any] | None, **filter: Any) -> int:
        return len([t async for t in saver.alist(config, filter=filter)])

    thread_t = {"configurable": {"thread_id": "t"}}
    assert await count(thread_t, step=1) == 1  # the int, not the string "1"
    assert await count(thread_t, step="1") == 1
    assert await count(thread_t, flag=True) == 1 and await count(thread_t, flag=False) == 1
    assert await count(thread_t, score=0.5) == 1
    assert await count(thread_t, who={"name": "ada"}) == 1
    assert await count(None, step=1) == 2  # across threads
    assert await count(None, run_id="r-1", source="input") == 1
    assert await count(None, run_id="r-1", source="loop") == 0
    assert await count(None, missing="x") == 0


async def test_nul_characters_are_stripped_from_metadata(saver: SQLSaver) -> None:
    """PostgreSQL cannot store NUL in JSON; every backend stores the same cleaned value."""
    stored = await put(
        saver, "nul", {"source": "loop", "step": 0, "note": "a\x00b", "nested": {"k": "c\x00d"}}
    )
    loaded = await saver.aget_tuple(stored)
    assert loaded is not None
    assert loaded.metadata["note"] == "ab" and loaded.metadata["nested"] == {"k": "cd"}
    assert len([t async for t in saver.alist(None, filter={"note": "ab"})]) == 1


async def test_list_pages_through_long_histories(saver: SQLSaver) -> None:
    parent = None
    ids = []
    for step in range(150):  # more than two pages
        parent = await put(saver, "long", {"source": "loop", "step": step}, parent, counter=step)
        ids.append(parent["configurable"]["checkpoint_id"])

    listed = [t async for t in saver.alist({"configurable": {"thread_id": "long"}})]
    assert [t.config["configurable"]["checkpoint_id"] for t in listed] == ids[::-1]
    assert [t.checkpoint["channel_values"]["counter"] for t in listed] == list(range(149, -1, -1))
    before = {"configurable": {"thread_id": "long", "checkpoint_id": ids[100]}}
    older = [t async for t in saver.alist({"configurable": {"thread_id": "long"}}, before=before, limit=70)]
    assert [t.metadata["step"] for t in older] == list(range(99, 29, -1))
    assert [t.metadata["step"] for t in saver.list({"configurable": {"thread_id": "long"}}, limit=3)] == [
        149,
        148,
        147,
    ]


async def test_list_without_config_spans_threads_newest_first(saver: SQLSaver) -> None:
    made = [await put(saver, f"thread-{i}", {"source": "input", "step": -1}) for i in range(3)]
    listed = [t.config["configurable"]["thread_id"] async for t in saver.alist(None)]
    assert listed == [m["configurable"]["thread_id"] for m in reversed(made)]


async def test_sync_calls_work_on_the_event_loop_thread(saver: SQLSaver) -> None:
    """Unlike AsyncSqliteSaver, the sync API needs no loop: it may even block a running one."""
    stored = saver.put(
        {"configurable": {"thread_id": "sync", "checkpoint_ns": ""}},
        checkpoint({"x": [1, 2]}, saver),
        {"source": "input", "step": -1},
        {},
    )
    saver.put_writes(stored, [("x", [3])], task_id="task-1")
    loaded = saver.get_tuple({"configurable": {"thread_id": "sync"}})
    assert loaded is not None and loaded.pending_writes == [("task-1", "x", [3])]
    assert (await saver.aget_tuple(stored)) is not None


@pytest.mark.parametrize("path", ["async", "sync"])
async def test_a_get_torn_by_a_concurrent_delete_is_read_again(
    saver: SQLSaver, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """``get_tuple`` reads the checkpoint row and its blobs with separate statements outside a
    transaction; if a delete commits in between, it reads again in one transaction instead of
    returning the checkpoint without its values."""
    stored = await put(saver, "torn", {"source": "loop", "step": 0}, document="x" * 2000, pages=["a", "b"])
    select_checkpoint = queries.select_checkpoint

    def select_then_delete(*args: Any) -> Any:
        found = yield from select_checkpoint(*args)
        saver.db.write_sync(maintenance.delete_threads, ["torn"])  # commits between the statements
        return found

    monkeypatch.setattr(queries, "select_checkpoint", select_then_delete)
    loaded = await saver.aget_tuple(stored) if path == "async" else saver.get_tuple(stored)
    if saver.db.backend == "mysql":  # its reads are one REPEATABLE READ snapshot: the state before
        assert loaded is not None
        assert loaded.checkpoint["channel_values"] == {"document": "x" * 2000, "pages": ["a", "b"]}
    else:
        assert loaded is None


async def test_a_server_connection_dropped_while_idle_is_replaced(
    saver: SQLSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pooled PostgreSQL/MySQL connections idle past PING_AFTER_IDLE_S are pinged before use."""
    backend = saver.db.backend
    if backend == "sqlite":
        pytest.skip("no server connection to drop")
    stored = await put(saver, "idle", {"source": "input", "step": -1})
    assert saver.get_tuple(stored) is not None  # the sync engine has a pooled connection too
    monkeypatch.setattr(connect, "PING_AFTER_IDLE_S", 0.0)
    admin = create_engine(saver.db.url.sync_url)
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        else:
            others = conn.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            ).scalars()
            for connection_id in list(others):
                conn.execute(text(f"KILL {int(connection_id)}"))
    admin.dispose()
    assert await saver.aget_tuple(stored) is not None
    assert saver.get_tuple(stored) is not None
    await put(saver, "idle", {"source": "loop", "step": 0}, stored)


async def test_large_values_round_trip(saver: SQLSaver) -> None:
    page = "x" * 1_500_000 + "end"  # bigger than MySQL's 64 KiB BLOB / TEXT
    stored = await put(
        saver, "big", {"source": "loop", "step": 0}, document=page, pages=[page, b"\x00\xff" * 1000]
    )
    loaded = await saver.aget_tuple(stored)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"]["document"] == page
    assert loaded.checkpoint["channel_values"]["pages"] == [page, b"\x00\xff" * 1000]


async def test_thread_ids_that_differ_only_in_case_or_trailing_space(saver: SQLSaver) -> None:
    """MySQL's default collation would merge these; the schema uses a binary one."""
    for thread_id in ("Run", "run", "run "):
        await put(saver, thread_id, {"source": "input", "step": -1, "who": thread_id})
    for thread_id in ("Run", "run", "run "):
        loaded = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
        assert loaded is not None and loaded.metadata["who"] == thread_id


async def test_versions_are_increasing_strings(saver: SQLSaver) -> None:
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    assert isinstance(v1, str) and v1 < v2 and v2.startswith("0" * 31 + "2.")
    assert saver.get_next_version(7, None).startswith("0" * 31 + "8.")


async def test_shared_database_is_not_closed_by_the_saver(backend_url: str) -> None:
    from fathom.store import Database

    db = Database(backend_url)
    async with SQLSaver(db) as first:
        await put(first, "kept", {"source": "input", "step": -1})
    async with SQLSaver(db) as second:  # the pool survived the first saver
        assert await second.aget_tuple({"configurable": {"thread_id": "kept"}}) is not None
    await db.aclose()


def test_sync_only_program(tmp_path: Path) -> None:
    """A plain sync script: ``with`` the saver, ``invoke`` the graph, read the history."""
    thread_id = str(uuid.uuid4())
    with SQLSaver.from_url(tmp_path / "sync.db") as saver:
        graph = research_graph().compile(checkpointer=saver)
        graph.invoke(research_input(budget=3), run_config(thread_id), durability="sync")
        assert [s.values.get("rounds") for s in graph.get_state_history(run_config(thread_id))][:4] == [
            3,
            2,
            1,
            0,
        ]


def test_default_url_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with SQLSaver.from_url() as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "nothing"}}) is None
    assert (tmp_path / "fathom" / "checkpoints.db").is_file()
