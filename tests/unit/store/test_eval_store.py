"""The eval work queue: registration, claims, leases, renewal, the owner guard, on every backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from fathom.errors import ConfigError
from fathom.store import Database
from fathom.store.checkpoints.testing import scratch_database
from fathom.store.eval import EvalItem, EvalStore
from tests.support.checkpoints import backend_url, server

__all__ = ["backend_url"]  # fixture

ITEMS = [EvalItem(f"q{i}", f"question {i}?", f"answer {i}", {"level": i % 3}) for i in range(6)]


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[EvalStore]:
    db = Database(backend_url)
    try:
        yield EvalStore(db)
    finally:
        await db.aclose()


async def test_create_is_idempotent_and_keeps_work_done(store: EvalStore) -> None:
    info = await store.create_or_open("e1", "toy", ITEMS, {"judge": "exact"})
    assert info.total == 6 and info.counts["pending"] == 6 and info.options == {"judge": "exact"}
    [first] = await store.claim("e1", "w1", 60, 1)
    assert await store.finish("e1", first.id, "w1", answer="answer 0", verdict="correct", judge="exact")

    again = await store.create_or_open("e1", "toy", [*ITEMS, EvalItem("q6", "question 6?", "answer 6")])
    assert again.total == 7 and again.counts["done"] == 1 and again.counts["pending"] == 6
    [done] = await store.items("e1", "done")
    assert (done.id, done.answer, done.verdict, done.extra) == ("q0", "answer 0", "correct", {"level": 0})
    assert [e.name for e in await store.list_evals()] == ["e1"]


async def test_another_dataset_under_the_same_name_is_refused(store: EvalStore) -> None:
    await store.create_or_open("e1", "toy", ITEMS)
    with pytest.raises(ConfigError, match="toy"):
        await store.create_or_open("e1", "other", ITEMS)
    with pytest.raises(ConfigError, match="two items"):
        await store.create_or_open("e2", "toy", [ITEMS[0], ITEMS[0]])


async def test_claims_in_order_never_twice_and_expired_leases_are_claimable(store: EvalStore) -> None:
    await store.create_or_open("e1", "toy", ITEMS)
    now = time.time()
    a = await store.claim("e1", "w1", 60, 2, now=now)
    b = await store.claim("e1", "w2", 60, 10, now=now)
    assert [c.id for c in a] == ["q0", "q1"] and [c.id for c in b] == ["q2", "q3", "q4", "q5"]
    assert await store.claim("e1", "w3", 60, 10, now=now) == []
    assert all(c.attempts == 1 for c in a + b)

    # w1's leases expire (as if its process died): w3 takes them over, attempts counted.
    taken = await store.claim("e1", "w3", 60, 10, now=now + 61)
    assert [(c.id, c.attempts) for c in taken] == [("q0", 2), ("q1", 2), ("q2", 2), ("q3", 2), ("q4", 2), ("q5", 2)]


async def test_a_dead_workers_items_are_taken_over_before_pending_ones(store: EvalStore) -> None:
    """Their runs continue from checkpoints, so they go first, then the queue in dataset order."""
    await store.create_or_open("e1", "toy", ITEMS)
    now = time.time()
    await store.claim("e1", "stopped", 600, 1, now=now)  # q0
    await store.claim("e1", "dead", 10, 1, now=now)  # q1, its lease ends at now + 10
    await store.release("stopped", "e1")  # q0 pending again, ahead of q1 in the dataset
    [taken] = await store.claim("e1", "w3", 60, 1, now=now + 11)
    assert (taken.id, taken.attempts) == ("q1", 2)
    rest = await store.claim("e1", "w3", 60, 3, now=now + 11)
    assert [(c.id, c.attempts) for c in rest] == [("q0", 2), ("q2", 1), ("q3", 1)]


def test_a_claim_on_sqlite_walks_the_queue_index_not_every_pending_item(tmp_path) -> None:
    """At 50,000 items a claim that sorted every pending item took 15 ms (on the event loop)."""
    import sqlite3

    from sqlalchemy import create_engine

    from fathom.store import eval as eval_store
    from fathom.store.migrations import metadata

    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    metadata.create_all(engine)
    captured: list[str] = []
    with engine.begin() as conn:
        conn.connection.dbapi_connection.set_trace_callback(captured.append)
        eval_store._claim(conn, "e1", "w1", 0.0, 60.0, 1)
    raw = sqlite3.connect(tmp_path / "plan.db")
    plans = [" / ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql))
             for sql in captured if sql.lstrip().upper().startswith(("UPDATE", "WITH"))]
    [plan] = plans  # one statement
    assert "fathom_eval_items_queue_idx" in plan, plan
    assert "SCAN fathom_eval_items" not in plan, plan


async def test_renew_keeps_leases_and_the_owner_guard_protects_the_new_owner(store: EvalStore) -> None:
    await store.create_or_open("e1", "toy", ITEMS[:2])
    [q0, q1] = await store.claim("e1", "w1", 0.0, 2)
    # A zero lease has expired at once: w2 takes q0 over before w1 renews; w1 keeps only q1.
    [taken, _] = await store.claim("e1", "w2", 60, 2, now=time.time() + 1)
    assert taken.id == "q0"
    assert await store.renew("e1", "w1", ["q0", "q1"], 60) == []  # w2 took both (both expired)
    assert not await store.finish("e1", "q0", "w1", answer="stale", verdict="incorrect")
    assert not await store.fail("e1", "q1", "w1", cause="model", error="boom")
    assert await store.renew("e1", "w2", ["q0", "q1"], 60) == ["q0", "q1"]
    assert await store.finish("e1", "q0", "w2", answer="answer 0", verdict="correct", metrics={"rounds": 3})
    assert await store.fail("e1", "q1", "w2", cause="model", error="HTTP 400")
    records = {r.id: r for r in await store.items("e1")}
    assert records["q0"].answer == "answer 0" and records["q0"].metrics == {"rounds": 3}
    assert records["q0"].lease_owner is None and records["q0"].status == "done"
    assert records["q1"].status == "failed" and records["q1"].metrics == {"failure": "model"}
    assert records["q1"].error == "HTTP 400"
    assert q1.id == "q1" and q0.id == "q0"
    # Done and failed items are not claimable; retry_failed makes failed ones pending again.
    assert await store.claim("e1", "w3", 60, 10, now=time.time() + 1000) == []
    assert await store.retry_failed("e1") == 1
    assert [c.id for c in await store.claim("e1", "w3", 60, 10)] == ["q1"]


async def test_release_hands_claims_back_and_delete_removes_the_eval(store: EvalStore) -> None:
    await store.create_or_open("e1", "toy", ITEMS)
    await store.create_or_open("e2", "toy", ITEMS)
    await store.claim("e1", "w1", 60, 3)
    await store.claim("e2", "w1", 60, 1)
    assert await store.release("w1", "e1") == 3
    assert (await store.get("e1")).counts == {"pending": 6, "claimed": 0, "done": 0, "failed": 0}  # type: ignore[union-attr]
    assert await store.release("w1") == 1
    assert [c.id for c in await store.claim("e1", "w2", 60, 1)] == ["q0"]
    assert await store.delete("e1") and not await store.delete("e1")
    assert [e.name for e in await store.list_evals()] == ["e2"] and await store.items("e1") == []


async def test_an_items_run_is_recorded_and_noted_on_the_item_together(store: EvalStore) -> None:
    """One transaction: the run registry row and the item's run id, or (run recorded already)
    neither change."""
    from fathom.store import RunExistsError
    from fathom.store.runs import RunRegistry, new_run

    await store.create_or_open("e1", "toy", ITEMS)
    [item] = await store.claim("e1", "w1", 60, 1)
    record = await store.create_run("e1", item.id, "w1", new_run("e1:q0", item.question, endpoints={"pid": 1}))
    assert (record.run_id, record.status, record.endpoints) == ("e1:q0", "running", {"pid": 1})
    assert (await RunRegistry(store.db).get("e1:q0")) == record
    [held] = await store.items("e1", "claimed")
    assert held.run_id == "e1:q0"

    [other] = await store.claim("e1", "w1", 60, 1)
    with pytest.raises(RunExistsError):
        await store.create_run("e1", other.id, "w1", new_run("e1:q0", other.question))
    assert {r.id: r.run_id for r in await store.items("e1", "claimed")} == {"q0": "e1:q0", "q1": None}


@pytest.mark.postgres
async def test_concurrent_claimers_on_postgresql_never_share_an_item() -> None:
    """Many claimers, each on its own connection pool, race for 60 items: each item goes to one."""
    with scratch_database(server("postgresql")) as url:
        setup = Database(url)
        await EvalStore(setup).create_or_open("race", "toy", [EvalItem(f"q{i:02}", "?", "!") for i in range(60)])
        await setup.aclose()
        databases = [Database(url) for _ in range(4)]
        try:

            async def worker(n: int) -> list[str]:
                store = EvalStore(databases[n % len(databases)])
                got: list[str] = []
                while claimed := await store.claim("race", f"w{n}", 60, 3):
                    got += [c.id for c in claimed]
                return got

            results = await asyncio.gather(*(worker(n) for n in range(8)))
        finally:
            for db in databases:
                await db.aclose()
    everything = [i for got in results for i in got]
    assert sorted(everything) == [f"q{i:02}" for i in range(60)]
    assert len(set(everything)) == 60
