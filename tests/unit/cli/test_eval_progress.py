"""The progress of `fathom eval run` as a user reads it: a live bar, lines in a log, JSON lines."""

from __future__ import annotations

import io
import json

from rich.console import Console

from fathom.cli.progress import EvalProgressView, eval_status_line

START = {"event": "eval_start", "eval": "simpleqa", "dataset": "simpleqa", "owner": "h:1:x", "total": 4, "done": 1,
         "failed": 0, "in_flight": 0, "correct": 1, "accuracy": 1.0, "per_minute": None, "eta_s": None}


def progress(**fields) -> dict:
    return {**START, "event": "eval_progress", **fields}


def events() -> list[dict]:
    return [
        START,
        progress(in_flight=3),
        progress(item="q2", status="done", verdict="correct", done=2, correct=2, in_flight=2, per_minute=12.0, eta_s=10),
        progress(item="q3", status="failed", error="search model server down", failed=1, done=2, correct=2,
                 per_minute=12.0, eta_s=5),
        progress(item="q4", status="done", verdict="judge_error", done=3, failed=1, correct=2, per_minute=12.0, eta_s=0),
    ]


def test_the_status_line_shows_counts_accuracy_pace_and_time_left():
    line = eval_status_line(progress(done=120, total=200, correct=90, accuracy=0.75, failed=2, in_flight=32,
                                     per_minute=14.25, eta_s=338))
    assert line == "done 120/200 · correct 90 (75.0%) · failed 2 · in flight 32 · 14.2 q/min · ETA 5:38"
    assert "ETA —" in eval_status_line(START) and "— q/min" in eval_status_line(START)
    assert "ETA 1:01:01" in eval_status_line(progress(eta_s=3661))


def test_a_log_gets_the_start_failures_judge_errors_and_the_last_status():
    out = io.StringIO()
    with EvalProgressView(Console(file=out, force_terminal=False, width=200), every_s=3600) as view:
        for event in events():
            view.handle(event)
    text = out.getvalue()
    assert "eval simpleqa: 4 questions of simpleqa, 1 done before" in text
    assert "q3: search model server down" in text and "judge error on q4" in text
    assert "done 3/4 · correct 2" in text  # the first status line; the rest wait out every_s
    assert "\x1b[" not in text  # no terminal codes in a log


def test_a_terminal_gets_a_live_bar_that_ends_with_the_last_figures():
    out = io.StringIO()
    with EvalProgressView(Console(file=out, force_terminal=True, width=200), every_s=3600) as view:
        for event in events():
            view.handle(event)
    text = out.getvalue()
    assert "━" in text and "q3" in text
    assert "done 3/4 · correct 2 (" in text and "failed 1" in text


def test_json_gives_every_event_as_one_line():
    out = io.StringIO()
    with EvalProgressView(Console(file=out, force_terminal=False), as_json=True) as view:
        for event in events():
            view.handle(event)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == events()
