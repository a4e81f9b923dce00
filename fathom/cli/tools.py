"""What ``fathom corpus`` and ``fathom cache`` show: indexing with a progress bar, and reports.

The commands themselves live in :mod:`fathom.cli`; this module only talks to a console.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fathom.store.corpus import Corpus, IndexReport, RootStats

MAX_LISTED = 20  # problems listed one by one; the rest are counted


async def index_with_progress(corpus: Corpus, directory: Path, console: Console, *, quiet: bool) -> IndexReport:
    """Index ``directory``, showing a progress bar on ``console`` unless ``quiet``."""
    if quiet:
        return await corpus.index(directory)
    columns = (TextColumn("[bold]indexing[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=None)

        def show(done: int, total: int, path: str) -> None:
            progress.update(task, completed=done, total=total, description=escape(Path(path).name if path else ""))

        return await corpus.index(directory, on_progress=show)


def print_index_report(report: IndexReport, console: Console) -> None:
    """One summary line, then the files that could not be read and the warnings."""
    console.print(
        f"indexed {escape(report.root)}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed, {len(report.failed)} unreadable"
    )
    for label, items in (("unreadable", report.failed), ("warning", report.warnings)):
        for path, reason in items[:MAX_LISTED]:
            console.print(f"  [yellow]{label}:[/] {escape(path)}: {escape(reason)}")
        if len(items) > MAX_LISTED:
            console.print(f"  … and {len(items) - MAX_LISTED} more ({label})")


def print_corpus_stats(stats: list[RootStats], *, as_json: bool, console: Console) -> None:
    if as_json:
        for root in stats:
            sys.stdout.write(json.dumps({"path": root.path, "files": root.files, "unreadable": root.unreadable,
                                         "text_bytes": root.text_bytes, "indexed_at": root.indexed_at.isoformat()}) + "\n")
        return
    if not stats:
        console.print("no indexed directories: add one with 'fathom corpus index DIR'")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("directory", "files", "unreadable", "text", "indexed"):
        table.add_column(column, no_wrap=column != "directory", justify="left" if column == "directory" else "right")
    for root in stats:
        table.add_row(escape(root.path), str(root.files), str(root.unreadable), _size(root.text_bytes),
                      root.indexed_at.strftime("%Y-%m-%d %H:%M"))
    Console(soft_wrap=False).print(table)


def print_cache_sizes(sizes: dict[str, int], *, verb: str, console: Console) -> None:
    console.print(f"{verb}: " + ", ".join(f"{n} {name}" for name, n in sizes.items()))


def _size(n: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("kB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
