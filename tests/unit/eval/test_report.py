"""An eval's report from hand-built items: the tables' figures, a standalone escaped HTML page with
real PNG plots, Markdown with linked plots, and evals with nothing to plot."""

from __future__ import annotations

import base64
import io
import re
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from fathom.errors import ConfigError
from fathom.eval.metrics import summarize
from fathom.eval.plots import render_plots, write_plots
from fathom.eval.report import build_report, eval_elapsed_s, render_html, render_markdown
from fathom.store.eval import EvalInfo, EvalItemRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert("x")</script> | ![pwn](http://evil.example/a.png) <img src=x onerror=alert(1)>'
CREATED = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def item(i, status="done", verdict="correct", *, rounds=3, calls=2, wall=10.0, run_status="answered", kind=None,
         failure=None, question=None, answer="an answer", reason="matches", error=None):
    metrics = {"rounds": rounds, "tool_calls": calls, "prompt_tokens": 100, "completion_tokens": 10,
               "cached_tokens": 40, "wall_s": wall, "run_status": run_status}
    if status == "failed":
        metrics = {"wall_s": wall, "run_status": "failed", "failure": failure}
    elif status != "done":
        metrics = {}
    return EvalItemRecord(
        id=f"q{i}", question=question or f"question {i}?", gold="gold", extra={} if kind is None else {"level": kind},
        status=status, attempts=1, run_id=f"e:q{i}" if status in ("done", "failed") else None,
        verdict=verdict if status == "done" else None, reason=reason if status == "done" else None,
        judge="exact", answer=answer if status == "done" else None, error=error, metrics=metrics,
    )


def metrics_row(record):  # as `fathom eval show` counts (fathom/cli/eval.py)
    metrics = dict(record.metrics or {})
    status = metrics.get("run_status") or ("failed" if record.status == "failed" else None)
    return {**metrics, "verdict": record.verdict if record.status == "done" else None, "status": status}


def info(records, name="bench", dataset="tiny"):
    counts = {s: sum(1 for r in records if r.status == s) for s in ("pending", "claimed", "done", "failed")}
    return EvalInfo(name=name, dataset=dataset, options={"judge": "exact"}, created_at=CREATED, updated_at=CREATED,
                    counts=counts)


RECORDS = [
    item(1, kind="easy", rounds=2, calls=1, wall=4.0),
    item(2, kind="easy", rounds=3, calls=2, wall=8.0),
    item(3, verdict="incorrect", kind="hard", rounds=5, calls=4, wall=20.0, answer=HOSTILE, question=HOSTILE),
    item(4, verdict="not_attempted", kind="hard", rounds=6, calls=4, wall=30.0, run_status="interrupted"),
    item(5, verdict="judge_error", kind="hard", rounds=3, calls=2, wall=12.0, reason=HOSTILE),
    item(6, status="failed", kind="hard", wall=2.0, failure="model", error="model server said 500 <b>"),
    item(7, status="pending", kind="easy"),
    item(8, kind=None, rounds=4, calls=3, wall=16.0),
]


def make(records=RECORDS, elapsed=120.0):
    return build_report(info(records), records, summarize(map(metrics_row, records)), elapsed_s=elapsed,
                        generated_at=CREATED)


def rows(markdown: str) -> list[list[str]]:
    """The body rows of the Markdown table ``markdown`` starts with."""
    section = markdown.lstrip("\n").split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in section.splitlines()[2:]]


def table(markdown: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table under heading ``title``."""
    return rows(markdown.split(f"## {title}\n", 1)[1])


def test_the_figures_of_a_hand_built_eval():
    report = make()
    s = report.summary
    assert (s.total, s.correct, s.completed) == (8, 3, 5)  # item 4 was interrupted: not completed
    assert (report.name, report.dataset, report.judge) == ("bench", "tiny", "exact")
    assert report.overall.correct_completed == 3
    assert report.outcomes == {"correct": 3, "incorrect": 1, "not_attempted": 1, "judge_error": 1, "unjudged": 0,
                               "failed": 1, "unfinished": 1}
    assert report.failures == {"judge": 1, "model": 1}
    assert report.settled_per_minute == pytest.approx(7 / 2)  # 7 settled in 120 s
    [by_dataset, by_level] = report.breakdowns
    assert [(g.group, g.total, g.correct) for g in by_dataset.groups] == [("tiny", 8, 3)]
    assert by_level.key == "level"
    assert [(g.group, g.total, g.correct, g.completed) for g in by_level.groups] == [
        ("hard", 4, 0, 2), ("easy", 3, 2, 2), ("(none)", 1, 1, 1)]
    assert [(g.group, g.total, g.correct) for g in report.by_tool_calls] == [("1", 1, 1), ("2", 2, 1), ("3", 1, 1),
                                                                              ("4", 2, 0)]
    assert sorted(report.rounds) == [(2, True), (3, False), (3, True), (4, True), (5, False), (6, False)]
    assert report.walls == [2.0, 4.0, 8.0, 12.0, 16.0, 20.0, 30.0]
    assert [m.id for m in report.missed] == ["q3", "q4", "q5", "q6", "q7"]
    assert report.missed[3].detail == "model server said 500 <b>"  # a failure shows its error


def test_markdown_tables_carry_the_figures():
    text = render_markdown(make())
    assert text.startswith("# Eval bench\n")
    figures = dict(rows(text.split("\n\n", 2)[2]))
    assert figures["accuracy over all questions"] == "37.5% (3 of 8)"
    assert figures["accuracy over completed questions"] == "60.0% (3 of 5)"
    assert figures["rounds: mean / median"] == "3.83 / 3.50"
    assert figures["tool calls: mean / median"] == "2.67 / 2.50"
    assert figures["cached prompt tokens"] == "240 (40.0%)"
    assert figures["wall per question: p50 / p95"] == "12 s / 27 s"
    assert figures["throughput"] == "3.50 questions per minute"
    assert table(text, "Failures by cause") == [["judge", "1"], ["model", "1"]]
    assert table(text, "Accuracy by level")[0] == ["hard", "4", "0", "0.0%", "2", "0.0%", "1"]
    assert table(text, "Accuracy by tool calls")[-1] == ["4", "2", "0", "0.0%", "1", "0.0%", "0"]
    assert "`--out FILE.md`" in text  # on stdout there are no plot files to link


def test_markdown_escapes_untrusted_text_and_links_written_plots(tmp_path):
    report = make()
    links = write_plots(render_plots(report), tmp_path / "r_files")
    text = render_markdown(report, links)
    assert "<script>" not in text and "<img" not in text and "[pwn](" not in text  # no markup, no link
    assert r'&lt;script&gt;alert("x")&lt;/script&gt; \| !\[pwn\](http://evil' in text
    for row in table(text, "Questions not answered correctly"):
        assert len(row) == 6  # a | in the text did not split the cell
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images and all(link.startswith("r_files/") for link in images)
    for link in images:
        assert decoded_size((tmp_path / link).read_bytes())[0] >= 400


def decoded_size(png: bytes) -> tuple[int, int]:
    """The size of the PNG image ``png`` once decoded (Pillow comes with matplotlib)."""
    from PIL import Image

    assert png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as image:
        image.load()  # decodes every pixel: a broken PNG raises
        assert image.format == "PNG"
        return image.size


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value or "" for key, value in attrs if key in ("src", "href", "action", "srcset", "poster")]

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_one_standalone_page_with_escaped_text_and_real_pngs():
    report = make()
    plots = render_plots(report)
    assert [p.name for p in plots] == ["accuracy_by_dataset", "accuracy_by_level", "rounds_histogram",
                                       "latency_cdf", "tool_calls_vs_correctness"]
    page = render_html(report, plots)
    parsed = _Page()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags  # nothing to run or load
    assert parsed.tags.count("img") == len(plots)
    assert parsed.urls and all(url.startswith("data:image/png;base64,") for url in parsed.urls)
    for url in parsed.urls:
        assert decoded_size(base64.b64decode(url.split(",", 1)[1], validate=True))[0] >= 400
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page, re.I)
    assert "url(" not in page and "@import" not in page
    assert HOSTILE in "".join(parsed.text)  # shown as text, not markup
    assert "37.5% (3 of 8)" in page


def test_many_tool_call_counts_are_binned():
    records = [item(i, verdict="correct" if i % 2 else "incorrect", calls=i) for i in range(40)]
    report = make(records)
    assert len(report.by_tool_calls) <= 10
    assert sum(g.total for g in report.by_tool_calls) == 40
    assert report.by_tool_calls[0].group == "0–3"


def test_an_eval_with_nothing_finished_or_all_failed_renders():
    pending = [item(i, status="pending") for i in range(3)]
    report = make(pending, elapsed=None)
    assert report.summary.accuracy == 0.0 and report.settled_per_minute is None
    assert [p.name for p in render_plots(report)] == ["accuracy_by_dataset"]
    assert "0.0% (0 of 3)" in render_markdown(report)
    assert "No plots" not in render_html(report, render_plots(report))

    failed = [item(i, status="failed", failure="tools", error="search down") for i in range(3)]
    report = make(failed)
    assert report.failures == {"tools": 3} and report.summary.accuracy_completed is None
    plots = render_plots(report)
    assert [p.name for p in plots] == ["accuracy_by_dataset", "latency_cdf"]
    assert "search down" in render_html(report, plots)

    empty = make([], elapsed=None)
    assert render_plots(empty) == [] and "No plots" in render_html(empty, [])
    assert "accuracy over all questions | —" in render_markdown(empty, [])


def test_elapsed_spans_the_eval_research_runs():
    start = CREATED
    runs = [SimpleNamespace(created_at=start + timedelta(seconds=s), updated_at=start + timedelta(seconds=e))
            for s, e in ((0, 30), (5, 90), (40, 60))]
    assert eval_elapsed_s(runs) == 90.0
    assert eval_elapsed_s([]) is None


def test_without_matplotlib_the_plots_are_a_one_line_error(monkeypatch):
    report = make()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"need matplotlib: pip install"):
        render_plots(report)
    assert "`--out FILE.md`" in render_markdown(report)  # Markdown on stdout draws nothing


def test_kinds_are_shown_literally_and_free_text_is_no_kind():
    records = [item(i, kind="$\\frac{1}{" if i % 2 else "50% $$", verdict="correct" if i < 3 else "incorrect")
               for i in range(6)]
    records += [item(10 + i, kind=f"level {i}") for i in range(30)]  # with these, "level" has 32 values
    report = make(records)
    assert [b.key for b in report.breakdowns] == ["dataset"]
    report = make(records[:6])
    assert [(g.group, g.correct) for g in report.breakdowns[1].groups] == [("$\\frac{1}{", 1), ("50% $$", 2)]
    [plot] = [p for p in render_plots(report) if p.name == "accuracy_by_level"]  # no mathtext error
    assert decoded_size(plot.png)[0] >= 400
