"""`fathom eval run` SIGKILLed mid-way, then the same command again (SQLite, one process).

The search model is a pure function of its prompt (search once, then answer the token the
question names) and records every request, so the test can count what each question cost. Until
the kill, every answer turn is held: the killed process leaves three questions claimed, each
with a checkpoint after its search. The same command again must take those claims back at once
(their owner is a dead process of this host; the 120-second lease is not waited out), continue
each from its checkpoint (no question searches twice) and finish the eval with every question
answered once.
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

from tests.conftest import call, cli_env, fake_env
from tests.fakes.sglang import FakeSGLang, Reply

TOKENS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord"]
ROWS = [{"id": f"q{i}", "question": f"Which token is number {i}, {t}?", "answer": t} for i, t in enumerate(TOKENS)]
_QUESTION = re.compile(r"Which token is number (\d+), (\w+)\?")


class Model:
    """Search once, then answer; answer turns are held (long) while ``holding`` is set."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, int]] = []  # (question number, tool results seen)
        self.lock = threading.Lock()
        self.holding = True

    def __call__(self, prompt: str) -> Reply:
        number, token = _QUESTION.search(prompt).groups()  # type: ignore[union-attr]
        seen = prompt.count("<tool_response>")
        with self.lock:
            self.turns.append((number, seen))
        if seen == 0:
            return Reply("Search first.</think>\n\n" + call("search_urls", query=f"token {number}"))
        return Reply(f"Found it.</think>\n\nThe token is \\boxed{{{token}}}.", delay_s=60 if self.holding else 0)

    def held(self) -> int:
        with self.lock:
            return sum(1 for _, seen in self.turns if seen > 0)


def test_a_killed_eval_resumes_from_checkpoints_and_researches_nothing_twice(db_url, searxng, web, tmp_path: Path):
    data = tmp_path / "tokens.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    model = Model()
    command = [sys.executable, "-m", "fathom", "eval", "run", str(data), "--judge", "exact", "--concurrency", "3"]
    with FakeSGLang(fallback=model) as sglang:
        env = cli_env(db_url, fake_env(sglang, searxng, web))
        victim = subprocess.Popen(command + ["-q"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while model.held() < 3 and victim.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert model.held() == 3, "the eval never had three questions waiting on their answers"
        finally:
            if victim.poll() is None:
                os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)  # reaped: its pid is gone, not a zombie
        assert victim.returncode == -signal.SIGKILL

        model.holding = False
        again = subprocess.run(command + ["--json"], env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=100)  # well under the 120 s lease
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["done"] == 6 and summary["verdicts"]["correct"] == 6, summary

    searches = Counter(number for number, seen in model.turns if seen == 0)
    assert searches == Counter({str(i): 1 for i in range(6)}), searches  # resumed, never from scratch
    answers = Counter(number for number, seen in model.turns if seen > 0)
    assert sorted(answers.values()) == [1, 1, 1, 2, 2, 2], answers  # only the three cut-off turns asked again

    progress = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    start = next(e for e in progress if e["event"] == "eval_start")
    assert start["total"] == 6 and start["done"] == 0
    final = [e for e in progress if e["event"] == "eval_progress"][-1]
    assert final["done"] == 6 and final["accuracy"] == 1.0 and final["eta_s"] == 0.0
