"""The plots of ``fathom eval report``, drawn with matplotlib's Agg canvas (never pyplot) into PNG
bytes: outcomes per group, a rounds histogram, a latency CDF and accuracy by tool calls.
matplotlib is imported only when drawing."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.errors import ConfigError
from fathom.eval.metrics import Summary
from fathom.eval.report import _COLOURS, OUTCOMES, Breakdown, GroupScore, Report, _cut, _label, percent

__all__ = ["Plot", "render_plots", "write_plots"]


@dataclass(frozen=True)
class Plot:
    """One drawn plot: a file-name stem, a title and the PNG bytes."""

    name: str
    title: str
    png: bytes


def _plain(text: str, limit: int = 32) -> str:
    """A label matplotlib shows literally (``$`` would start mathtext)."""
    return _cut(text, limit).replace("$", r"\$")


def _figure(width: float, height: float) -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("the plots of 'fathom eval report' need matplotlib: pip install 'matplotlib>=3.8'") from None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure, figure.subplots()


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def _outcome_plot(breakdown: Breakdown) -> Plot:
    groups = breakdown.groups
    figure, axes = _figure(8, 1.2 + 0.45 * len(groups))
    labels = [_plain(g.group) for g in groups]
    left = [0.0] * len(groups)
    for name in OUTCOMES:
        shares = [g.outcomes.get(name, 0) / g.total for g in groups]
        if any(shares):
            axes.barh(labels, shares, left=left, color=_COLOURS[name], label=_label(name))
            left = [a + b for a, b in zip(left, shares, strict=True)]
    for y, group in enumerate(groups):
        axes.text(1.01, y, f"{percent(group.accuracy)} of {group.total}", va="center", fontsize=9)
    axes.set_xlim(0, 1.18)
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    axes.invert_yaxis()
    axes.set_xlabel("share of questions (the correct share is the accuracy over all)")
    figure.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    title = f"Accuracy and outcomes by {_label(breakdown.key)}"
    axes.set_title(title)
    return Plot(f"accuracy_by_{breakdown.key}", title, _png(figure))


def _rounds_plot(pairs: Sequence[tuple[int, bool]]) -> Plot:
    figure, axes = _figure(7, 3.6)
    from matplotlib.ticker import MaxNLocator

    low, top = min(r for r, _ in pairs), max(r for r, _ in pairs)
    bins = [b - 0.5 for b in range(low, top + 2)] if top - low < 60 else 30
    correct = [r for r, ok in pairs if ok]
    other = [r for r, ok in pairs if not ok]
    axes.hist([correct, other], bins=bins, stacked=True, color=[_COLOURS["correct"], _COLOURS["incorrect"]],
              label=["correct", "not correct"], rwidth=0.85)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("rounds of the search model")
    axes.set_ylabel("questions")
    axes.legend(frameon=False)
    title = "Rounds per question"
    axes.set_title(title)
    return Plot("rounds_histogram", title, _png(figure))


def _latency_plot(walls: Sequence[float], summary: Summary) -> Plot:
    figure, axes = _figure(7, 3.6)
    n = len(walls)
    axes.step([0.0, *walls], [0.0, *[(i + 1) / n for i in range(n)]], where="post", color="#1565c0")
    for value, name in ((summary.wall_p50_s, "p50"), (summary.wall_p95_s, "p95")):
        if value is not None:
            axes.axvline(value, color="#888", linestyle="--", linewidth=1)
            axes.text(value, 0.02, f" {name} {value:.1f} s", fontsize=8, color="#444")
    axes.set_ylim(0, 1.02)
    axes.set_xlim(left=0)
    axes.set_xlabel("wall seconds per question")
    axes.set_ylabel("share of questions done within")
    title = "Latency CDF"
    axes.set_title(title)
    return Plot("latency_cdf", title, _png(figure))


def _tool_calls_plot(groups: Sequence[GroupScore]) -> Plot:
    figure, axes = _figure(7, 3.6)
    labels = [g.group for g in groups]
    accuracy = [g.accuracy or 0.0 for g in groups]
    axes.bar(labels, accuracy, color=_COLOURS["correct"])
    for x, group in enumerate(groups):
        axes.text(x, (group.accuracy or 0.0) + 0.02, f"n={group.total}", ha="center", fontsize=8)
    axes.set_ylim(0, 1.12)
    axes.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    axes.set_xlabel("tool calls of the question's research")
    axes.set_ylabel("accuracy")
    title = "Accuracy by tool calls"
    axes.set_title(title)
    return Plot("tool_calls_vs_correctness", title, _png(figure))


def render_plots(report: Report) -> list[Plot]:
    """The report's plots as PNGs: accuracy and outcomes per data set and per kind, the rounds
    histogram, the latency CDF, accuracy by tool calls; a plot with nothing to show is left out.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    plots = [_outcome_plot(b) for b in report.breakdowns if b.groups]
    if report.rounds:
        plots.append(_rounds_plot(report.rounds))
    if report.walls:
        plots.append(_latency_plot(report.walls, report.summary))
    if report.by_tool_calls:
        plots.append(_tool_calls_plot(report.by_tool_calls))
    return plots


def write_plots(plots: Sequence[Plot], folder: Path) -> list[tuple[str, str]]:
    """Write ``plots`` as ``folder/NAME.png``; return (title, link relative to the folder's parent).

    Raises:
        ConfigError: the folder or a file cannot be written.
    """
    links: list[tuple[str, str]] = []
    try:
        folder.mkdir(exist_ok=True)  # beside the report: its folder must exist, as for the report
        for plot in plots:
            (folder / f"{plot.name}.png").write_bytes(plot.png)
            links.append((plot.title, f"{folder.name}/{plot.name}.png"))
    except OSError as exc:
        raise ConfigError(f"the plots of --out cannot be written to {folder}: {exc.strerror or exc}") from None
    return links
