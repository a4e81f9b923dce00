"""Three eval worker processes share one PostgreSQL eval; one is SIGKILLed mid-way.

Each worker is a subprocess running :func:`fathom.eval.runner.run_eval` (what ``fathom eval run
DATA --name shared --judge exact`` calls) with a 2-second lease, so the survivors take over the
dead worker's item once its lease expires. The search model is a pure function of its prompt
(search once, then answer the token the question names), so the order of requests does not
matter. The victim starts first, alone, with one item in flight, and talks to its own fake
model, which holds the victim's first answer turn (research step two); the other two start
then, and once they are under way the victim is killed: its item has a checkpoint after the
search and must be resumed from it, never researched from scratch again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from fathom.store.checkpoints.testing import scratch_database, server_url
from tests.conftest import call, cli_env, fake_env
from tests.fakes.sglang import FakeSGLang, Reply

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKENS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "glacier", "heath", "inlet", "jetty", "karst", "loess"]
ROWS = [
    {"id": f"q{i}", "question": f"Which token is number {i}, {token}?", "answer": token}
    for i, token in enumerate(TOKENS)
]
_QUESTION = re.compile(r"Which token is number (\d+), (\w+)\?")

DRIVER = """
import asyncio, json, sys
from fathom.eval.datasets import load_dataset
from fathom.eval.judges import judge_for
from fathom.eval.runner import run_eval
from fathom.settings import Settings

data, concurrency = sys.argv[1], int(sys.argv[2])
loaded = load_dataset(data)
summary = asyncio.run(run_eval("shared", loaded.name, loaded.items, Settings.load(),
                               judge=judge_for("exact", dataset=loaded.name, chat=None),
                               concurrency=concurrency, lease_s=2))
print(json.dumps(summary))
"""


class Model:
    """Search once, then answer. Records (question, tool results seen) of every request, from
    every fake it serves; with ``hold`` set, the first answer turn is held until the test ends
    and ``held`` is set when it arrives."""

    def __init__(self, turns: list[tuple[str, int]], lock: threading.Lock, *, hold: bool = False) -> None:
        self.turns, self.lock, self.hold = turns, lock, hold
        self.held = threading.Event()

    def __call__(self, prompt: str) -> Reply:
        number, token = _QUESTION.search(prompt).groups()  # type: ignore[union-attr]
        seen = prompt.count("<tool_response>")
        with self.lock:
            self.turns.append((number, seen))
        if seen == 0:
            return Reply("Search first.</think>\n\n" + call("search_urls", query=f"token {number}"))
        answer = f"Found it.</think>\n\nThe token is \\boxed{{{token}}}."
        if self.hold and not self.held.is_set():
            self.held.set()
            return Reply(answer, delay_s=30)  # the victim dies waiting for it
        return Reply(answer)


@pytest.fixture
def pg_url():
    url, why = server_url("postgresql")
    if url is None:
        pytest.skip(f"PostgreSQL not reachable: {why}")
    with scratch_database(url) as scratch:
        yield scratch


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_workers_share_an_eval_and_take_over_a_killed_workers_item(pg_url, searxng, web, tmp_path: Path):
    data = tmp_path / "tokens.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    driver = tmp_path / "worker.py"
    driver.write_text(DRIVER, encoding="utf-8")
    turns: list[tuple[str, int]] = []
    lock = threading.Lock()
    shared, victims = Model(turns, lock), Model(turns, lock, hold=True)
    procs: list[subprocess.Popen] = []
    with FakeSGLang(fallback=shared) as sglang, FakeSGLang(fallback=victims) as victim_sglang:
        try:

            def start(model: FakeSGLang, concurrency: int) -> subprocess.Popen:
                env = cli_env(pg_url, {**fake_env(model, searxng, web), "PYTHONPATH": str(Path.cwd())})
                proc = subprocess.Popen(
                    [sys.executable, str(driver), str(data), str(concurrency)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                procs.append(proc)
                return proc

            victim = start(victim_sglang, 1)  # one item in flight: the one held below
            assert victims.held.wait(timeout=60), "the victim never reached its second model turn"
            survivors = [start(sglang, 2), start(sglang, 2)]
            deadline = time.monotonic() + 60
            while len(sglang.prompts) < 4 and time.monotonic() < deadline:  # the others are under way
                time.sleep(0.05)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)

            summaries = []
            for proc in survivors:
                out, err = proc.communicate(timeout=300)
                assert proc.returncode == 0, err[-3000:]
                summaries.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for proc in procs:
                _stop(proc)

    for summary in summaries:
        assert summary["total"] == 12 and summary["done"] == 12, summary
        assert summary["verdicts"]["correct"] == 12, summary

    records = _records(pg_url)
    assert sorted(r["id"] for r in records) == sorted(row["id"] for row in ROWS)
    assert all(r["status"] == "done" and r["verdict"] == "correct" for r in records), records
    assert len({r["run_id"] for r in records}) == 12  # one run per question
    taken_over = [r for r in records if r["attempts"] > 1]
    assert taken_over, "no item was taken over from the killed worker"

    first_turns = Counter(number for number, seen in turns if seen == 0)
    assert first_turns == Counter({str(i): 1 for i in range(12)}), first_turns  # nothing researched twice
    answers = Counter(number for number, seen in turns if seen > 0)
    held = [number for number, count in answers.items() if count == 2]
    assert len(held) == 1 and all(count >= 1 for count in answers.values()), answers  # only the held one twice


def _records(url: str) -> list[dict]:
    """The eval's item rows, read in a fresh process-local event loop."""
    import asyncio

    from fathom.store import open_store
    from fathom.store.eval import EvalStore

    async def read() -> list[dict]:
        async with open_store(url) as store:
            return [
                {"id": r.id, "status": r.status, "verdict": r.verdict, "run_id": r.run_id, "attempts": r.attempts}
                for r in await EvalStore(store.db).items("shared")
            ]

    return asyncio.run(read())
