"""The eval runner end to end: fake SGLang, fake search API and fake web on 127.0.0.1, SQLite runs.

The search model is a pure function of its prompt: it searches once, then answers the token its
question names, so every run takes two model turns and a resumed run repeats none of them.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import update

from fathom.eval.runner import Progress, eval_run_id, run_eval
from fathom.store import Database, open_store
from fathom.store.eval import EvalItem, EvalStore
from fathom.store.migrations import eval_items
from tests.conftest import call, fake_settings
from tests.fakes.sglang import Reply

TOKENS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord"]
ITEMS = [EvalItem(f"q{i}", f"Which token is number {i}, {token}?", token) for i, token in enumerate(TOKENS)]
_QUESTION = re.compile(r"Which token is number (\d+), (\w+)\?")


@dataclass(frozen=True)
class _Judgement:
    verdict: str
    reason: str = ""
    judge: str = ""


class ExactJudge:
    """The judge's shape (fathom.eval.judges.Judge): exact string match."""

    name = "exact-test"

    async def __call__(self, question: str, gold: str, answer: str | None) -> _Judgement:
        if not answer:
            return _Judgement("not_attempted", "no answer", self.name)
        return _Judgement("correct" if answer.strip() == gold else "incorrect", "", self.name)


class Model:
    """Search once, then answer; ``fail_second_turn`` items get an HTTP 400 on their second turn,
    ``slow`` items wait that long before it, ``never_answer`` items search on every turn."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, int]] = []  # (question number, tool results seen)
        self.fail_second_turn: set[str] = set()
        self.slow: dict[str, float] = {}
        self.never_answer: set[str] = set()

    def __call__(self, prompt: str) -> Reply:
        number, token = _QUESTION.search(prompt).groups()  # type: ignore[union-attr]
        seen = prompt.count("<tool_response>")
        self.turns.append((number, seen))
        if seen == 0 or number in self.never_answer:
            return Reply("Search first.</think>\n\n" + call("search_urls", query=f"token {number}" + f" more {seen}" * bool(seen)))
        if number in self.fail_second_turn:
            return Reply(status=400, error="scripted model failure")
        return Reply(f"Found it.</think>\n\nThe token is \\boxed{{{token}}}.", delay_s=self.slow.get(number, 0.0))

    def first_turns(self, number: str) -> int:
        return self.turns.count((number, 0))


@pytest.fixture
def model(sglang) -> Model:
    fake = Model()
    sglang.fallback = fake
    return fake


@pytest.fixture
def settings(sglang, searxng, web, tmp_path):
    return fake_settings(sglang, searxng, web, db_url=f"sqlite:///{tmp_path / 'eval.db'}")


async def records(settings) -> dict[str, Any]:
    db = Database(settings.db_url)
    try:
        return {r.id: r for r in await EvalStore(db).items("toy-eval")}
    finally:
        await db.aclose()


async def test_every_question_is_answered_once_and_a_rerun_skips_done_ones(model, settings):
    events: list[dict] = []
    summary = await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge(), concurrency=3,
                             on_event=events.append)
    assert summary["done"] == 6 and summary["failed"] == 0 and summary["pending"] == 0
    assert summary["verdicts"]["correct"] == 6
    assert sorted(model.turns) == sorted((str(i), seen) for i in range(6) for seen in (0, 1))

    rows = await records(settings)
    assert {r.answer for r in rows.values()} == set(TOKENS)
    assert all(r.judge == "exact-test" and r.run_id == eval_run_id("toy-eval", r.id) for r in rows.values())
    assert rows["q0"].metrics["rounds"] == 2 and rows["q0"].metrics["tool_calls"] == 1
    assert rows["q0"].metrics["prompt_tokens"] > 0 and rows["q0"].attempts == 1
    async with open_store(settings.db_url) as store:
        run = await store.runs.get(eval_run_id("toy-eval", "q3"))
        assert run is not None and run.status == "answered" and run.options["eval"] == "toy-eval"
    progress = [e for e in events if e["event"] == "eval_progress" and e.get("status") == "done"]
    assert len(progress) == 6 and max(e["done"] for e in progress) == 6
    last = max(progress, key=lambda e: e["done"])
    assert last["total"] == 6 and last["accuracy"] == 1.0 and last["eta_s"] == 0.0 and last["per_minute"] > 0
    assert events[-1]["event"] == "eval_end"

    again = await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge(), concurrency=3)
    assert again == summary and len(model.turns) == 12  # nothing asked twice


async def test_a_run_whose_budget_ran_out_unanswered_counts_as_a_budget_failure(model, sglang, searxng, web, tmp_path):
    model.never_answer.add("1")
    settings = fake_settings(sglang, searxng, web, db_url=f"sqlite:///{tmp_path / 'eval.db'}", max_rounds=2)
    summary = await run_eval("toy-eval", "toy", ITEMS[:3], settings, judge=ExactJudge(), concurrency=3)
    assert summary["done"] == 3 and summary["verdicts"] == {"correct": 2, "incorrect": 0, "not_attempted": 1,
                                                            "judge_error": 0}
    unanswered = (await records(settings))["q1"]
    assert unanswered.metrics["run_status"] == "unanswered" and unanswered.metrics["failure"] == "budget"
    assert "forced final turns" in unanswered.metrics["error"]


async def test_a_failed_run_is_retried_only_when_asked_and_resumes_from_its_checkpoint(model, settings, searxng):
    model.fail_second_turn.add("2")
    summary = await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge(), concurrency=2)
    assert summary["done"] == 5 and summary["failed"] == 1
    failed = (await records(settings))["q2"]
    assert failed.status == "failed" and failed.metrics["failure"] == "model" and "400" in failed.error

    turns = len(model.turns)
    assert (await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge()))["failed"] == 1
    assert len(model.turns) == turns  # failed items wait for retry_failed

    model.fail_second_turn.clear()
    summary = await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge(), retry_failed=True)
    assert summary["done"] == 6 and summary["verdicts"]["correct"] == 6
    assert model.first_turns("2") == 1  # resumed after the first turn, not started over
    searches = [r["params"]["q"] for r in searxng.requests if r["params"].get("pageno", "1") == "1"]
    assert searches.count("token 2") == 1
    assert (await records(settings))["q2"].attempts == 2


async def test_an_item_whose_process_died_is_taken_over_and_resumed(model, settings):
    model.fail_second_turn.add("4")
    await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge())
    # As a worker that died mid-run leaves it: claimed, lease expired, checkpoint after turn one.
    db = Database(settings.db_url)
    await db.write(lambda conn: conn.execute(
        update(eval_items).where(eval_items.c.item_id == "q4")
        .values(status="claimed", lease_owner="dead-host:1:x", lease_until=0.0)
    ))
    await db.aclose()

    model.fail_second_turn.clear()
    summary = await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge())
    assert summary["done"] == 6 and summary["verdicts"]["correct"] == 6
    assert model.first_turns("4") == 1 and len(model.turns) == 13  # 6 x 2 turns + the failed one


async def test_cancelling_releases_claims_and_everything_stays_resumable(model, settings, sglang):
    model.slow["1"] = 30.0  # q1's second turn hangs until the eval is cancelled
    task = asyncio.create_task(run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge(), concurrency=2))
    while ("1", 1) not in model.turns:
        assert not task.done()
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = await records(settings)
    assert rows["q1"].status == "pending" and rows["q1"].lease_owner is None
    assert not [r for r in rows.values() if r.status == "claimed"]
    async with open_store(settings.db_url) as store:
        run = await store.runs.get(eval_run_id("toy-eval", "q1"))
        assert run is not None and run.status == "interrupted"

    model.slow.clear()
    summary = await run_eval("toy-eval", "toy", ITEMS, settings, judge=ExactJudge(), concurrency=2)
    assert summary["done"] == 6 and summary["verdicts"]["correct"] == 6
    assert model.first_turns("1") == 1


def test_progress_counts_accuracy_so_far_pace_and_time_left():
    summary = {"total": 10, "done": 2, "failed": 0,
               "verdicts": {"correct": 1, "incorrect": 0, "not_attempted": 0, "judge_error": 1}}
    progress = Progress.from_summary(summary, now=100.0)
    start = progress.figures(now=100.0)
    assert start["accuracy"] == 1.0  # the judge error is not a judged answer
    assert start["per_minute"] is None and start["eta_s"] is None  # no pace yet

    progress.record("done", "correct")
    progress.record("done", "incorrect")
    progress.record("failed")
    progress.record("done", "judge_error")
    later = progress.figures(now=160.0)  # 4 finished here in one minute, 4 left
    assert (later["done"], later["failed"], later["correct"]) == (5, 1, 2)
    assert later["accuracy"] == 2 / 3
    assert later["per_minute"] == 4.0 and later["eta_s"] == 60.0

    for _ in range(4):
        progress.record("done", "correct")
    assert progress.figures(now=200.0)["eta_s"] == 0.0
