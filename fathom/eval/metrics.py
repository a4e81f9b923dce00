"""What an evaluation run scored, from one record per question, and how two runs compare.

Accuracy is reported over **all** questions (a crash, an interrupted or unanswered run counts as
not correct) and over the **completed** ones (status ``answered``), always both: upstream's
single figure left crashed questions out of its denominator. :func:`compare` pairs two runs on
their shared question ids and tests the difference with an exact two-sided McNemar test.

A record is a mapping with ``verdict`` (``correct``/``incorrect``/``not_attempted``/
``judge_error``, or ``None`` when nothing was judged), ``status`` (``answered``, ``unanswered``,
``failed``, ``interrupted``, ``waiting``, ``running``), ``failure`` (its cause: ``model``,
``tools``, ``budget``, ``store``, ``config``, ``run``, ``error``, or ``None``), ``rounds``,
``tool_calls``, ``prompt_tokens``, ``completion_tokens``, ``cached_tokens`` and ``wall_s``; a
missing or ``None`` number is left out of its statistic.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

__all__ = ["Comparison", "Summary", "compare", "mcnemar_p", "percentile", "summarize"]

VERDICTS = ("correct", "incorrect", "not_attempted", "judge_error")
COMPLETED = "answered"


@dataclass(frozen=True)
class Summary:
    """The figures of one run; :meth:`as_dict` is JSON-ready. A ratio or statistic with nothing to
    measure is ``None``."""

    total: int
    completed: int
    accuracy: float | None  # correct / total
    accuracy_completed: float | None  # correct among completed / completed
    correct: int
    incorrect: int
    not_attempted: int
    judge_error: int
    unjudged: int  # no verdict (the run gave no answer, or it was not judged yet)
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    # each question once, by its failure's cause, or "judge" for a judge error
    failures_by_cause: dict[str, int] = field(default_factory=dict)
    rounds_mean: float | None = None
    rounds_median: float | None = None
    tool_calls_mean: float | None = None
    tool_calls_median: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cached_fraction: float | None = None  # cached / prompt tokens
    wall_p50_s: float | None = None
    wall_p95_s: float | None = None
    elapsed_s: float | None = None
    questions_per_minute: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numbers(records: list[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks (numpy's
    default), or ``None`` for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(records: Iterable[Mapping[str, Any]], *, elapsed_s: float | None = None) -> Summary:
    """The :class:`Summary` of ``records``; ``elapsed_s``, the run's wall time, gives the throughput."""
    rows = list(records)
    verdicts = Counter(r.get("verdict") for r in rows)
    completed = [r for r in rows if r.get("status") == COMPLETED]
    correct_completed = sum(1 for r in completed if r.get("verdict") == "correct")
    statuses = Counter(str(r.get("status")) for r in rows)
    failures = Counter(str(r["failure"]) for r in rows if r.get("failure"))
    causes = Counter(str(r.get("failure") or "judge") for r in rows
                     if r.get("failure") or r.get("verdict") == "judge_error")
    rounds, calls, walls = _numbers(rows, "rounds"), _numbers(rows, "tool_calls"), _numbers(rows, "wall_s")
    prompt = int(sum(_numbers(rows, "prompt_tokens")))
    cached = int(sum(_numbers(rows, "cached_tokens")))
    rate = len(rows) / (elapsed_s / 60) if elapsed_s and elapsed_s > 0 else None
    return Summary(
        total=len(rows),
        completed=len(completed),
        accuracy=_ratio(verdicts["correct"], len(rows)),
        accuracy_completed=_ratio(correct_completed, len(completed)),
        correct=verdicts["correct"],
        incorrect=verdicts["incorrect"],
        not_attempted=verdicts["not_attempted"],
        judge_error=verdicts["judge_error"],
        unjudged=sum(n for v, n in verdicts.items() if v not in VERDICTS),
        statuses=dict(sorted(statuses.items())),
        failures=dict(sorted(failures.items())),
        failures_by_cause=dict(sorted(causes.items())),
        rounds_mean=statistics.fmean(rounds) if rounds else None,
        rounds_median=statistics.median(rounds) if rounds else None,
        tool_calls_mean=statistics.fmean(calls) if calls else None,
        tool_calls_median=statistics.median(calls) if calls else None,
        prompt_tokens=prompt,
        completion_tokens=int(sum(_numbers(rows, "completion_tokens"))),
        cached_tokens=cached,
        cached_fraction=cached / prompt if prompt else None,
        wall_p50_s=percentile(walls, 50),
        wall_p95_s=percentile(walls, 95),
        elapsed_s=elapsed_s,
        questions_per_minute=rate,
    )


# ---- comparing two runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Two runs on their shared ids: ``wins`` (only A correct), ``losses`` (only B correct),
    ``ties`` (both or neither), and the exact two-sided McNemar p-value of wins against losses."""

    shared: int
    wins: int
    losses: int
    ties: int
    p_value: float
    only_a: int = 0  # ids only run A has (left out)
    only_b: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs: twice the binomial
    (n = b + c, p = 1/2) tail at min(b, c), capped at 1; 1.0 when there are none."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be 0 or more, not {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def compare(a: Mapping[str, bool], b: Mapping[str, bool]) -> Comparison:
    """Compare runs ``a`` and ``b`` (question id → correct) on the ids both have."""
    shared = a.keys() & b.keys()
    wins = sum(1 for i in shared if a[i] and not b[i])
    losses = sum(1 for i in shared if b[i] and not a[i])
    return Comparison(
        shared=len(shared),
        wins=wins,
        losses=losses,
        ties=len(shared) - wins - losses,
        p_value=mcnemar_p(wins, losses),
        only_a=len(a.keys() - shared),
        only_b=len(b.keys() - shared),
    )
