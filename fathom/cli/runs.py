"""``fathom runs``, ``fathom cache`` and ``fathom corpus``: commands on what the run database holds.

The store, the graph and rich are imported inside each command: ``fathom --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from fathom.cli.options import EXIT_USAGE, DbUrl, fail, stderr, with_store, write_output

if TYPE_CHECKING:
    from fathom.store import RunRecord, Store
    from fathom.store.corpus import Corpus

# The run statuses as fathom.store.RUN_STATUSES defines them (a test keeps the two equal: the
# store is too heavy to import for --help).
STATUS_HELP = "Only runs with this status: running, waiting (for plan review), interrupted, answered, unanswered or failed"

runs_app = typer.Typer(
    help="List, show, export and delete recorded runs.", no_args_is_help=True, rich_markup_mode=None
)


def _age(when: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _record_json(record: RunRecord, status: str) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data.update(status=status, created_at=record.created_at.isoformat(), updated_at=record.updated_at.isoformat())
    return data


@runs_app.command("list")
def runs_list(
    status: Annotated[Optional[str], typer.Option("--status", help=STATUS_HELP)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    db: DbUrl = None,
) -> None:
    """List runs, newest first."""
    from fathom.app import runs as runner
    from fathom.store import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        fail(f"--status must be one of {', '.join(RUN_STATUSES)}", EXIT_USAGE)

    async def work(store: Store) -> list[tuple[RunRecord, str]]:
        records = await store.runs.list(limit=limit if status is None else 10_000)
        rows = [(r, await runner.honest_status(store, r)) for r in records]
        return [(r, st) for r, st in rows if status is None or st == status][:limit]

    rows = with_store(work)(db)
    if as_json:
        for record, state in rows:
            sys.stdout.write(json.dumps(_record_json(record, state), ensure_ascii=False) + "\n")
        return
    if not rows:
        stderr().print("no runs yet" if status is None else f"no {status} runs")
        return
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "status", "question", "rounds", "age"):
        table.add_column(column, no_wrap=column != "question")
    for record, state in rows:
        table.add_row(record.run_id, state, escape(record.question), str(record.rounds), _age(record.created_at))
    Console(soft_wrap=False).print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    db: DbUrl = None,
) -> None:
    """Show a run: answer, sources, rounds, tool calls with their results, errors."""
    from rich.console import Console
    from rich.markup import escape

    from fathom.app import runs as runner
    from fathom.app.summary import run_summary, tool_results

    async def work(store: Store) -> tuple[RunRecord, str, dict[str, Any]]:
        record = await runner.require_run(store, run_id)
        return record, await runner.honest_status(store, record), await runner.load_state(store, run_id)

    record, state, values = with_store(work)(db)
    summary = run_summary(run_id, values)
    results = tool_results(values.get("messages") or [], max_chars=300)
    if as_json:
        out = {**summary, "status": state, "tool_calls": results, "record": _record_json(record, state)}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    console = Console(soft_wrap=True, highlight=False)
    console.print(f"[bold]{escape(record.question)}[/]")
    console.print(f"run {run_id} · {state} · {summary['rounds']} rounds · started {_age(record.created_at)} ago")
    console.print(f"[bold]answer:[/] {escape(summary['answer'] or '—')}")
    verification = summary.get("verification") or {}
    if verification.get("verdict"):
        console.print(f"[bold]verification:[/] {verification['verdict']} {escape(verification.get('reason') or '')}")
        for url in verification.get("urls") or []:
            console.print(f"  supported by {escape(url)}")
    if summary.get("report"):
        citations = summary.get("citations") or {}
        console.print(
            f"[bold]report:[/] {len(summary['report'].split())} words, {citations.get('kept', 0)} citations kept, "
            f"{citations.get('removed', 0)} removed, {citations.get('unsourced', 0)} claims left unsourced, "
            f"{citations.get('unused', 0)} sources unused"
        )
    for fold in summary.get("folds") or []:
        console.print(
            f"[bold]fold[/] before round {fold['at_round']}: {len(fold['message_ids'])} tool results folded, "
            f"prompt ~{fold['tokens_before']:,} → ~{fold['tokens_after']:,} tokens"
        )
    if record.error or summary["error"]:
        console.print(f"[red]error:[/] {escape(record.error or summary['error'])}")
    for index, call in enumerate(results, 1):
        mark = "[green]✓[/]" if call["ok"] else "[red]✗[/]"
        console.print(f"{index:>3}. {mark} {call['name']} {escape(json.dumps(call['arguments'], ensure_ascii=False))}")
        console.print(f"       [dim]{escape(' '.join(call['result'].split()))}[/]")
    for source in summary["sources"]:
        console.print(f"  source: {escape(source['url'])}  {escape(source['title'])}")


@runs_app.command("export")
def runs_export(
    run_id: Annotated[str, typer.Argument(help="The run to export.")],
    fmt: Annotated[str, typer.Option("--format", help="json, md or html")] = "json",
    out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout")] = None,
    db: DbUrl = None,
) -> None:
    """Export a run: its full trace as JSON, or as Markdown after its report; html: the report page."""
    from fathom.app import runs as runner
    from fathom.app.report import report_document
    from fathom.app.summary import export_json, export_markdown, run_summary

    if fmt not in ("json", "md", "html"):
        fail("--format must be json, md or html", EXIT_USAGE)

    async def work(store: Store) -> tuple[RunRecord, dict[str, Any]]:
        record = await runner.require_run(store, run_id)
        return record, await runner.load_state(store, run_id)

    record, values = with_store(work)(db)
    values = {"question": record.question, **values}
    summary = run_summary(run_id, values)
    if fmt == "json":
        text = json.dumps(export_json(run_id, values, _record_json(record, record.status)), ensure_ascii=False, indent=2) + "\n"
    elif fmt == "html":
        if not summary["report"]:
            fail(f"run {run_id} has no report (it was not run with --deepresearch)", EXIT_USAGE)
        text = report_document(summary, "html")
    else:  # the report (when there is one), then the full research trace
        report = report_document(summary, "md") + "\n---\n\n" if summary["report"] else ""
        text = report + export_markdown(run_id, values)
    if write_output(text, out):
        stderr().print(f"wrote {out}")


@runs_app.command("delete")
def runs_delete(
    run_id: Annotated[str, typer.Argument(help="The run to delete, with all its checkpoints.")],
    db: DbUrl = None,
) -> None:
    """Delete a run and its checkpoints."""

    async def work(store: Store) -> bool:
        return await store.runs.delete(run_id)

    if not with_store(work)(db):
        fail(f"no run {run_id!r}", EXIT_USAGE)
    stderr().print(f"deleted run {run_id}")


cache_app = typer.Typer(
    help="The cache of searches, pages and evidence, kept in the run database.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@cache_app.command("clear")
def cache_clear(db: DbUrl = None) -> None:
    """Delete every cached search, page and evidence entry."""
    from fathom.cli.tools import print_cache_sizes
    from fathom.store.cache import ToolCache

    async def work(store: Store) -> dict[str, int]:
        return await ToolCache(store.db).clear()

    print_cache_sizes(with_store(work)(db), verb="cleared the cache", console=stderr())


@cache_app.command("stats")
def cache_stats(db: DbUrl = None) -> None:
    """How many searches, pages and evidence entries are cached."""
    from rich.console import Console

    from fathom.cli.tools import print_cache_sizes
    from fathom.store.cache import ToolCache

    async def work(store: Store) -> dict[str, int]:
        return await ToolCache(store.db).sizes()

    print_cache_sizes(with_store(work)(db), verb="cached", console=Console(highlight=False))


corpus_app = typer.Typer(
    help="Index local files (.md, .txt, .html, .pdf) to research with --search-backend local.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
CorpusDir = Annotated[Path, typer.Argument(help="A directory (searched recursively).")]


def corpus_call(work: Any, db: str | None) -> Any:
    """``with_store`` for corpus commands (a corpus refusal is a ToolError: one line, exit 2)."""
    from fathom.store.corpus import Corpus

    return with_store(lambda store: work(Corpus(store.db)))(db)


@corpus_app.command("index")
def corpus_index(
    directory: CorpusDir,
    db: DbUrl = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Index (or re-index: only changed files are read) the files under DIRECTORY."""
    from fathom.cli.tools import index_with_progress, print_index_report

    async def work(corpus: Corpus) -> Any:
        return await index_with_progress(corpus, directory, stderr(), quiet=quiet)

    print_index_report(corpus_call(work, db), stderr())


@corpus_app.command("stats")
def corpus_stats(
    db: DbUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
) -> None:
    """The indexed directories, with their file counts."""
    from fathom.cli.tools import print_corpus_stats

    async def work(corpus: Corpus) -> Any:
        return await corpus.stats()

    print_corpus_stats(corpus_call(work, db), as_json=as_json, console=stderr())


@corpus_app.command("remove")
def corpus_remove(directory: CorpusDir, db: DbUrl = None) -> None:
    """Forget DIRECTORY and everything indexed under it (the files themselves are untouched)."""

    async def work(corpus: Corpus) -> int:
        return await corpus.remove(directory)

    from rich.markup import escape

    removed = corpus_call(work, db)
    stderr().print(f"removed {escape(str(directory))} from the corpus ({removed} files)")
