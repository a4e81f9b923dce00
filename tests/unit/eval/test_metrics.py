"""Run figures on a hand-computed example, and the exact McNemar test against known values."""

from __future__ import annotations

import json

import pytest

from fathom.eval.metrics import Comparison, compare, mcnemar_p, percentile, summarize


def rec(verdict, status, failure=None, rounds=None, tool_calls=None, pt=None, ct=None, cached=None, wall=None):
    return {"verdict": verdict, "status": status, "failure": failure, "rounds": rounds, "tool_calls": tool_calls,
            "prompt_tokens": pt, "completion_tokens": ct, "cached_tokens": cached, "wall_s": wall}


RECORDS = [
    rec("correct", "answered", None, 2, 3, 100, 10, 50, 10.0),
    rec("incorrect", "answered", None, 4, 5, 200, 20, 0, 20.0),
    rec(None, "failed", "model", 1, 0, 50, 5, 25, 5.0),
    rec("judge_error", "answered", "judge", 3, 4, 150, 15, 75, 30.0),
    rec("not_attempted", "interrupted", "budget"),
]


def test_summary_of_a_hand_computed_example():
    s = summarize(RECORDS, elapsed_s=120.0)
    assert (s.total, s.completed) == (5, 3)
    assert s.accuracy == pytest.approx(1 / 5)  # a crash counts against accuracy over all
    assert s.accuracy_completed == pytest.approx(1 / 3)
    assert (s.correct, s.incorrect, s.not_attempted, s.judge_error, s.unjudged) == (1, 1, 1, 1, 1)
    assert s.statuses == {"answered": 3, "failed": 1, "interrupted": 1}
    assert s.failures == {"budget": 1, "judge": 1, "model": 1}
    assert s.failures_by_cause == s.failures  # the judge error carries its cause: counted once
    judge_errors = summarize([rec("judge_error", "answered"), rec("correct", "answered"), rec(None, "failed", "tools")])
    assert judge_errors.failures_by_cause == {"judge": 1, "tools": 1}
    assert (s.rounds_mean, s.rounds_median) == (2.5, 2.5)
    assert (s.tool_calls_mean, s.tool_calls_median) == (3.0, 3.5)
    assert (s.prompt_tokens, s.completion_tokens, s.cached_tokens) == (500, 50, 150)
    assert s.cached_fraction == pytest.approx(0.3)
    assert (s.wall_p50_s, s.wall_p95_s) == (pytest.approx(15.0), pytest.approx(28.5))
    assert s.questions_per_minute == pytest.approx(2.5)
    as_json = json.loads(json.dumps(s.as_dict()))
    assert as_json["accuracy"] == pytest.approx(0.2) and as_json["failures"]["model"] == 1


def test_summary_of_nothing_has_both_accuracies_as_none():
    s = summarize([])
    assert (s.total, s.accuracy, s.accuracy_completed, s.cached_fraction, s.wall_p50_s) == (0, None, None, None, None)
    assert s.questions_per_minute is None
    only_failed = summarize([rec(None, "failed", "tools")], elapsed_s=0)
    assert (only_failed.accuracy, only_failed.accuracy_completed) == (0.0, None)
    assert only_failed.questions_per_minute is None


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 100) == 4


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [(1, 9, 0.021484375), (9, 1, 0.021484375), (0, 0, 1.0), (5, 5, 1.0), (4, 5, 1.0),
     (0, 5, 0.0625), (0, 10, 2 / 1024), (2, 8, 0.109375)],
)
def test_mcnemar_exact_values(b, c, p):
    assert mcnemar_p(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_with_many_pairs_stays_exact_and_finite():
    assert 0 < mcnemar_p(400, 600) < 1e-9
    with pytest.raises(ValueError):
        mcnemar_p(-1, 2)


def test_compare_on_shared_ids():
    a = {"q1": True, "q2": True, "q3": False, "q4": False, "q5": True, "only-a": True}
    b = {"q1": True, "q2": False, "q3": True, "q4": False, "q5": False, "only-b": False}
    result = compare(a, b)
    assert result == Comparison(shared=5, wins=2, losses=1, ties=2, p_value=1.0, only_a=1, only_b=1)
    assert result.as_dict()["wins"] == 2
    b_wins = compare({f"q{i}": i == 0 for i in range(10)}, {f"q{i}": i != 0 for i in range(10)})
    assert (b_wins.wins, b_wins.losses, b_wins.p_value) == (1, 9, pytest.approx(0.021484375))
