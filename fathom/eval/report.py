"""An eval's report: its figures as tables, and plots, in Markdown or one standalone HTML page.

:func:`build_report` turns an eval's items (and the :class:`~fathom.eval.metrics.Summary` the
other ``fathom eval`` commands print) into a :class:`Report`; :func:`fathom.eval.plots.render_plots` draws its plots
as PNG bytes with matplotlib, and :func:`render_markdown` / :func:`render_html` write it out.

Every item has one *outcome*: its verdict once done (``correct``, ``incorrect``,
``not_attempted``, ``judge_error``, or ``unjudged``), ``failed``, or ``unfinished`` (pending or
claimed). Accuracy is shown over all questions and over the completed ones (the research run
answered), per data set and per kind when the items carry one (a ``kind``, ``category``,
``level``… key kept from the data set's rows).

Questions, answers and reasons are untrusted text: the HTML page escapes every one of them and
loads nothing (plots are ``data:`` URIs, styles are inline, a Content-Security-Policy forbids
the rest); Markdown cells escape HTML and Markdown syntax. matplotlib is imported only to draw,
with its Agg canvas and no pyplot state.
"""

from __future__ import annotations

import base64
import html
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fathom.eval.metrics import COMPLETED, Summary

if TYPE_CHECKING:
    from fathom.eval.plots import Plot

__all__ = [
    "Breakdown",
    "GroupScore",
    "MissedItem",
    "Report",
    "build_report",
    "eval_elapsed_s",
    "outcome",
    "percent",
    "render_html",
    "render_markdown",
]

OUTCOMES = ("correct", "incorrect", "not_attempted", "judge_error", "unjudged", "failed", "unfinished")
# Extra keys of a data set's rows that name a question's kind (medxpertqa has the last three).
KIND_KEYS = ("dataset", "kind", "category", "level", "difficulty", "type", "subject", "topic",
             "question_type", "medical_task", "body_system")
MAX_GROUPS = 24  # more distinct values than this is not a kind (an id, free text): no breakdown
MAX_BINS = 10  # tool-call counts beyond this many distinct values are binned
LISTED = 50  # questions listed in "not answered correctly"
CELL_CHARS = 300  # untrusted text is cut to this in tables

_COLOURS = {
    "correct": "#2e7d32",
    "incorrect": "#c62828",
    "not_attempted": "#f9a825",
    "judge_error": "#6a1b9a",
    "unjudged": "#90a4ae",
    "failed": "#37474f",
    "unfinished": "#cfd8dc",
}


def outcome(record: Any) -> str:
    """The one outcome of an eval item (see the module's docstring)."""
    if record.status == "done":
        return record.verdict if record.verdict in OUTCOMES[:4] else "unjudged"
    if record.status == "failed":
        return "failed"
    return "unfinished"


@dataclass(frozen=True)
class GroupScore:
    """The questions of one group (a data set, a kind, a tool-call count) and how they ended."""

    group: str
    total: int
    correct: int
    completed: int  # the research run answered
    correct_completed: int
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        """Correct over all the group's questions."""
        return self.correct / self.total if self.total else None

    @property
    def accuracy_completed(self) -> float | None:
        """Correct over the group's completed questions."""
        return self.correct_completed / self.completed if self.completed else None


@dataclass(frozen=True)
class Breakdown:
    """Accuracy per value of ``key`` (``dataset`` or an item's kind key), largest group first."""

    key: str
    groups: list[GroupScore]


@dataclass(frozen=True)
class MissedItem:
    """A question not answered correctly, as the report lists it (untrusted text, unescaped)."""

    id: str
    outcome: str
    question: str
    gold: str
    answer: str
    detail: str  # the judge's reason, or the failure


@dataclass(frozen=True)
class Report:
    """Everything a report shows; the renderers only format it."""

    name: str
    dataset: str
    judge: str
    created_at: datetime | None
    summary: Summary
    overall: GroupScore
    outcomes: dict[str, int]
    failures: dict[str, int]  # cause -> questions (judge errors under "judge")
    breakdowns: list[Breakdown]
    by_tool_calls: list[GroupScore]
    rounds: list[tuple[int, bool]]  # (rounds, correct) per question with research metrics
    walls: list[float]
    elapsed_s: float | None  # first research run's start to the last one's end
    settled_per_minute: float | None  # done or failed questions per minute of elapsed_s
    missed: list[MissedItem]
    missed_total: int
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _score(group: str, records: Sequence[Any]) -> GroupScore:
    outcomes = Counter(outcome(r) for r in records)
    completed = [r for r in records if (r.metrics or {}).get("run_status") == COMPLETED]
    return GroupScore(
        group=group,
        total=len(records),
        correct=outcomes["correct"],
        completed=len(completed),
        correct_completed=sum(1 for r in completed if outcome(r) == "correct"),
        outcomes={o: outcomes[o] for o in OUTCOMES if outcomes[o]},
    )


def _kind_value(value: Any) -> str | None:
    if isinstance(value, (str, int, float, bool)) and str(value).strip():
        return " ".join(str(value).split())
    return None


def _breakdowns(dataset: str, records: Sequence[Any]) -> list[Breakdown]:
    found: list[Breakdown] = []
    for key in KIND_KEYS:
        values = [_kind_value((r.extra or {}).get(key)) for r in records]
        if key == "dataset":  # every item belongs to the eval's data set unless its row says otherwise
            values = [v or dataset for v in values]
        elif not any(values):
            continue
        labels = [v if v is not None else "(none)" for v in values]
        if len(set(labels)) > MAX_GROUPS:
            continue
        members: dict[str, list[Any]] = {}
        for label, record in zip(labels, records, strict=True):
            members.setdefault(label, []).append(record)
        groups = [_score(label, rs) for label, rs in members.items()]
        found.append(Breakdown(key, sorted(groups, key=lambda g: (-g.total, g.group))))
    return found


def _tool_call_bins(records_by_calls: Mapping[int, list[Any]]) -> list[GroupScore]:
    counts = sorted(records_by_calls)
    if not counts:
        return []
    if len(counts) <= MAX_BINS:
        return [_score(str(c), records_by_calls[c]) for c in counts]
    width = math.ceil((counts[-1] + 1) / MAX_BINS)
    bins: dict[int, list[Any]] = {}
    for calls, rs in records_by_calls.items():
        bins.setdefault(calls // width, []).extend(rs)
    return [_score(f"{b * width}–{b * width + width - 1}", bins[b]) for b in sorted(bins)]


def _cut(text: str | None, limit: int = CELL_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def eval_elapsed_s(runs: Iterable[Any]) -> float | None:
    """Seconds from the first research run's start to the last one's last update (``runs``: the
    eval's run records, with ``created_at`` and ``updated_at``); pauses between resumes count.
    None without runs."""
    spans = [(_aware(r.created_at), _aware(r.updated_at)) for r in runs]
    if not spans:
        return None
    return max(0.0, (max(end for _, end in spans) - min(start for start, _ in spans)).total_seconds())


def build_report(
    info: Any,
    records: Sequence[Any],
    summary: Summary,
    *,
    elapsed_s: float | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """The :class:`Report` of eval ``info`` (an :class:`~fathom.store.eval.EvalInfo`) from its
    ``records`` (:class:`~fathom.store.eval.EvalItemRecord`) and their ``summary``;
    ``elapsed_s`` (see :func:`eval_elapsed_s`) gives the throughput."""
    rounds: list[tuple[int, bool]] = []
    walls: list[float] = []
    by_calls: dict[int, list[Any]] = {}
    for record in records:
        metrics = record.metrics or {}
        correct = outcome(record) == "correct"
        if (value := _number(metrics, "rounds")) is not None:
            rounds.append((int(value), correct))
        if (value := _number(metrics, "tool_calls")) is not None:
            by_calls.setdefault(int(value), []).append(record)
        if (value := _number(metrics, "wall_s")) is not None:
            walls.append(value)
    outcomes = Counter(outcome(r) for r in records)
    missed = [r for r in records if outcome(r) != "correct"]
    settled = outcomes["failed"] + sum(outcomes[o] for o in OUTCOMES[:5])
    options = getattr(info, "options", None) or {}
    judges = sorted({r.judge for r in records if r.status == "done" and r.judge})  # a rejudge changes them
    return Report(
        name=info.name,
        dataset=info.dataset,
        judge=", ".join(judges) or str(options.get("judge") or "—"),
        created_at=getattr(info, "created_at", None),
        summary=summary,
        overall=_score("all", records),
        outcomes={o: outcomes[o] for o in OUTCOMES},
        failures=summary.failures_by_cause,
        breakdowns=_breakdowns(info.dataset, records),
        by_tool_calls=_tool_call_bins(by_calls),
        rounds=rounds,
        walls=sorted(walls),
        elapsed_s=elapsed_s,
        settled_per_minute=settled / (elapsed_s / 60) if elapsed_s and settled else None,
        missed=[
            MissedItem(
                id=r.id,
                outcome=outcome(r),
                question=_cut(r.question),
                gold=_cut(r.gold),
                answer=_cut(r.answer),
                detail=_cut(r.error if outcome(r) == "failed" else r.reason),
            )
            for r in missed[:LISTED]
        ],
        missed_total=len(missed),
        generated_at=generated_at or datetime.now(UTC),
    )


# ---- figures as text ------------------------------------------------------------------------


def percent(value: float | None) -> str:
    """A ratio as a percentage with one decimal, or "—" when there is none."""
    return "—" if value is None else f"{value:.1%}"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return f"{text}{unit}"


def _label(key: str) -> str:
    return key.replace("_", " ")


def _figures(report: Report) -> list[tuple[str, str]]:
    """The headline figures as (name, value) rows."""
    s = report.summary
    return [
        ("accuracy over all questions", f"{percent(s.accuracy)} ({s.correct} of {s.total})"),
        ("accuracy over completed questions",
         f"{percent(s.accuracy_completed)} ({report.overall.correct_completed} of {s.completed})"),
        ("correct", str(s.correct)),
        ("incorrect", str(s.incorrect)),
        ("not attempted", str(s.not_attempted)),
        ("judge errors", str(s.judge_error)),
        ("failed", str(report.outcomes.get("failed", 0))),
        ("unfinished (pending or claimed)", str(report.outcomes.get("unfinished", 0))),
        ("rounds: mean / median", f"{_num(s.rounds_mean)} / {_num(s.rounds_median)}"),
        ("tool calls: mean / median", f"{_num(s.tool_calls_mean)} / {_num(s.tool_calls_median)}"),
        ("prompt tokens", _num(s.prompt_tokens)),
        ("completion tokens", _num(s.completion_tokens)),
        ("cached prompt tokens", f"{_num(s.cached_tokens)} ({percent(s.cached_fraction)})"),
        ("wall per question: p50 / p95", f"{_num(s.wall_p50_s, ' s')} / {_num(s.wall_p95_s, ' s')}"),
        ("elapsed (first run start to last run end)", _num(report.elapsed_s, " s")),
        ("throughput", "—" if report.settled_per_minute is None
         else f"{report.settled_per_minute:,.2f} questions per minute"),
    ]


def _group_rows(groups: Sequence[GroupScore]) -> list[list[str]]:
    return [[g.group, str(g.total), str(g.correct), percent(g.accuracy), str(g.completed), percent(g.accuracy_completed),
             str(g.outcomes.get("failed", 0))] for g in groups]


_GROUP_HEAD = ["questions", "correct", "accuracy", "completed", "accuracy (completed)", "failed"]


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table after the headline: (title, header, rows)."""
    total = report.summary.total
    tables = [
        ("Outcomes", ["outcome", "questions", "share"],
         [[_label(o), str(n), percent(n / total if total else None)] for o, n in report.outcomes.items()]),
        ("Failures by cause", ["cause", "questions"],
         [[cause, str(n)] for cause, n in report.failures.items()] or [["none", "0"]]),
        ("Research run statuses", ["status", "questions"],
         [[status if status != "None" else "no run yet", str(n)] for status, n in report.summary.statuses.items()]),
    ]
    for breakdown in report.breakdowns:
        tables.append((f"Accuracy by {_label(breakdown.key)}", [_label(breakdown.key), *_GROUP_HEAD],
                       _group_rows(breakdown.groups)))
    if report.by_tool_calls:
        tables.append(("Accuracy by tool calls", ["tool calls", *_GROUP_HEAD], _group_rows(report.by_tool_calls)))
    return tables


def _missed_rows(report: Report) -> list[list[str]]:
    return [[m.id, _label(m.outcome), m.question, m.gold, m.answer, m.detail] for m in report.missed]


_MISSED_HEAD = ["id", "outcome", "question", "gold", "answer", "reason or error"]


def _missed_title(report: Report) -> str:
    shown = len(report.missed)
    more = f" (the first {shown} of {report.missed_total})" if shown < report.missed_total else ""
    return f"Questions not answered correctly{more}"


def _subtitle(report: Report) -> str:
    created = report.created_at.strftime("%Y-%m-%d %H:%M UTC") if report.created_at else "—"
    return (f"data set {report.dataset} · judge {report.judge} · {report.summary.total} questions · "
            f"created {created} · reported {report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}")


# ---- Markdown -------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|#~"})  # < and & become entities


def _md(text: str) -> str:
    """``text`` as one literal Markdown table cell: one line, Markdown and HTML syntax escaped."""
    return html.escape(" ".join(text.split()).translate(_MD_SPECIAL), quote=False)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report, plots: Sequence[tuple[str, str]] | None = None) -> str:
    """The report as Markdown; ``plots`` are (title, relative link) of the PNGs written beside it,
    or None to say how to get them."""
    lines = [f"# Eval {_md(report.name)}", "", _md(_subtitle(report)), ""]
    lines += _md_table(["figure", "value"], _figures(report))
    for title, header, rows in _tables(report):
        lines += ["", f"## {_md(title)}", ""] + _md_table(header, rows)
    lines += ["", "## Plots", ""]
    if plots is None:
        lines.append("The plots are written with `--out FILE.md` (as PNG files beside it) or in `--format html`.")
    elif not plots:
        lines.append("No plots (no question has research metrics yet).")
    for title, link in plots or ():
        lines += [f"![{_md(title)}]({quote(link)})", ""]
    if report.missed:
        lines += ["", f"## {_md(_missed_title(report))}", ""] + _md_table(_MISSED_HEAD, _missed_rows(report))
    return "\n".join(lines).rstrip() + "\n"


# ---- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em 1em .5em 0}figure img{max-width:100%;border:1px solid #eee}
table.items td{max-width:22em;overflow-wrap:anywhere}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], css_class: str = "") -> str:
    def cell(text: str, tag: str = "td") -> str:
        numeric = tag == "td" and text[:1].isdigit() and css_class != "items"
        return f"<{tag}{' class=n' if numeric else ''}>{html.escape(text)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report, plots: Sequence[Plot] = ()) -> str:
    """The report as one standalone HTML page: styles inline, ``plots`` embedded as PNG ``data:``
    URIs, every text escaped, nothing fetched."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Eval {esc(report.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Eval {esc(report.name)}</h1>",
        f'<p class="sub">{esc(_subtitle(report))}</p>',
        _html_table(["figure", "value"], _figures(report)),
    ]
    for title, header, rows in _tables(report):
        parts += [f"<h2>{esc(title)}</h2>", _html_table(header, rows)]
    parts.append("<h2>Plots</h2>")
    if not plots:
        parts.append("<p>No plots (no question has research metrics yet).</p>")
    for plot in plots:
        data = base64.b64encode(plot.png).decode("ascii")
        parts.append(f'<figure><img alt="{esc(plot.title)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{esc(plot.title)}</figcaption></figure>")
    if report.missed:
        parts += [f"<h2>{esc(_missed_title(report))}</h2>", _html_table(_MISSED_HEAD, _missed_rows(report), "items")]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
