"""The LLM judge's verdict cache in SQL, on every backend: kept across processes, first verdict
wins, concurrent writers of one key never fail, and the real LLM judge asks no model twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fathom.eval.judges import Judgement, JudgementCache, LLMJudge, cache_key
from fathom.models.chat import ChatClient
from fathom.retry import RetryPolicy
from fathom.store import Database
from fathom.store.judgements import JudgementStore, StoredJudgement
from tests.fakes.sglang import FakeSGLang
from tests.support.checkpoints import backend_url

__all__ = ["backend_url"]  # fixture

Q = "Who proposed the fuzzy integral?"
KEY = cache_key("llm:grader@0123456789ab", Q, "Michio Sugeno", "Sugeno")


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    database = Database(backend_url)
    try:
        yield database
    finally:
        await database.aclose()


async def test_a_verdict_is_read_back_after_the_database_is_reopened(db: Database, backend_url: str) -> None:
    store = JudgementStore(db, Judgement)
    assert await store.get(KEY) is None
    reason = "Names Sugeno, the gold answer — «même» personne."
    await store.put(KEY, Judgement("correct", reason, "llm:grader@0123456789ab"))

    reopened = Database(backend_url)  # another process, later
    try:
        got = await JudgementStore(reopened, Judgement).get(KEY)
    finally:
        await reopened.aclose()
    assert got == Judgement("correct", reason, "llm:grader@0123456789ab")
    assert await JudgementStore(db, StoredJudgement).get(KEY) == ("correct", reason, "llm:grader@0123456789ab")
    assert await store.get(cache_key("llm:grader@0123456789ab", Q, "Michio Sugeno", "Zadeh")) is None


async def test_the_first_verdict_stored_is_kept(db: Database) -> None:
    store = JudgementStore(db, Judgement)
    await store.put(KEY, Judgement("correct", "first", "llm:a"))
    await store.put(KEY, Judgement("incorrect", "second", "llm:a"))
    assert await store.get(KEY) == Judgement("correct", "first", "llm:a")
    assert await store.count() == 1


async def test_concurrent_workers_storing_one_key_never_fail(db: Database, backend_url: str) -> None:
    """Two workers (each with its own connection pool, as two processes) grade the same answers at
    once and store them together: every put succeeds, one row per key."""
    other = Database(backend_url)
    try:
        stores = [JudgementStore(db, Judgement), JudgementStore(other, Judgement)]
        keys = [cache_key("llm:a", Q, "Michio Sugeno", f"answer {i}") for i in range(10)]
        await asyncio.gather(*(store.put(key, Judgement("correct", f"by worker {n}", "llm:a"))
                               for key in keys for n, store in enumerate(stores)))
        assert await stores[1].count() == 10
        assert {(await stores[0].get(key)).verdict for key in keys} == {"correct"}  # type: ignore[union-attr]
    finally:
        await other.aclose()


async def test_long_judge_names_are_cut_to_the_column_and_clear_empties(db: Database) -> None:
    store = JudgementStore(db, Judgement)
    name = "llm:" + "m" * 400
    await store.put(KEY, Judgement("not_attempted", "", name))
    got = await store.get(KEY)
    assert got is not None and got.judge == name[:255] and got.reason == "" and got.verdict == "not_attempted"
    assert await store.clear() == 1 and await store.get(KEY) is None


# ---- the LLM judge with the SQL cache, over loopback -----------------------------------------------


async def test_the_llm_judge_asks_once_for_each_answer_across_processes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/judge.db"
    with FakeSGLang(["CORRECT\nIt names Sugeno.", "INCORRECT\nIt names Zadeh."], model_path="grader") as fake:

        async def grade(prompt: str | None = None) -> list[Judgement]:
            db = Database(url)  # a fresh process each time
            chat = ChatClient.from_spec(fake.url + "/v1", api_key=None, max_retries=0, name="judge")
            assert chat is not None
            try:
                cache: JudgementCache = JudgementStore(db, Judgement)
                judge = LLMJudge(chat, prompt=prompt, cache=cache, retry=RetryPolicy(attempts=1))
                return [await judge(Q, "Michio Sugeno", "Sugeno"), await judge(Q, "Michio Sugeno", "Zadeh")]
            finally:
                await chat.aclose()
                await db.aclose()

        def asked() -> int:
            return sum(r["path"] == "/v1/chat/completions" for r in fake.requests)

        first = await grade()
        assert [j.verdict for j in first] == ["correct", "incorrect"] and asked() == 2
        assert await grade() == first and asked() == 2  # from the cache: no model asked

        fake.add("A", "B")  # another grader text is another judge: asked again
        other = await grade("Q: {question} Gold: {target} Answer: {predicted_answer}. Reply A, B or C.")
        assert [j.verdict for j in other] == ["correct", "incorrect"] and asked() == 4
        assert other[0].judge != first[0].judge
