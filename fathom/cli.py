"""The ``fathom`` command line: research a question, with live progress on stderr."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

try:  # typer >= 0.2x vendors its own click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on real click
    from click import exceptions as click_exceptions
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fathom import runner
from fathom.cli_report import plan_decision, render_report, save_report
from fathom.cli_tools import index_with_progress, print_cache_sizes, print_corpus_stats, print_index_report
from fathom.checkpoints import RUN_STATUSES, CheckpointStoreError, RunRecord, Store, UnknownRunError, open_store
from fathom.models.base import ModelError
from fathom.progress import ProgressPrinter
from fathom.runner import new_run_id
from fathom.settings import Settings, SettingsError
from fathom.summary import export_json, export_markdown, run_summary, tool_results
from fathom.tools.base import ToolError
from fathom.tools.cache import ToolCache
from fathom.tools.corpus import Corpus

app = typer.Typer(
    name="fathom",
    help="Durable deep research with small models (Fathom-Search-4B on SGLang).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_NO_ANSWER = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_STORE = 4
EXIT_REVIEW = 5
EXIT_INTERRUPTED = 130


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    sys.stderr.write(f"fathom: error: {' '.join(message.split())}\n")
    raise typer.Exit(code)


# Flags shared by every command that runs the graph. Defaults are None so env vars and the
# config file apply unless a flag is given.
SearchModelUrl = Annotated[Optional[str], typer.Option("--search-model-url", help="SGLang server of the search model [env FATHOM_SEARCH_MODEL_URL; default http://127.0.0.1:8902]")]
SynthModelUrl = Annotated[Optional[str], typer.Option("--synth-model-url", help="SGLang server of the synthesizer [env FATHOM_SYNTH_MODEL_URL; default http://127.0.0.1:8903]")]
QueryLlm = Annotated[Optional[str], typer.Option("--query-llm", help="Page-evidence LLM: none, openai:MODEL or http://host:port/v1 [env FATHOM_QUERY_LLM; default none]")]
SearchBackend = Annotated[Optional[str], typer.Option("--search-backend", help="tavily, serper, searxng, ddg or local [env FATHOM_SEARCH_BACKEND; default: by the keys set]")]
SearchProtocolOpt = Annotated[Optional[str], typer.Option("--search-protocol", help="fathom (raw ChatML /generate) or chat (OpenAI tool calling on /v1) [env FATHOM_SEARCH_PROTOCOL]")]
SearxngUrl = Annotated[Optional[str], typer.Option("--searxng-url", help="SearXNG base URL [env SEARXNG_URL]")]
SerperUrl = Annotated[Optional[str], typer.Option("--serper-url", help="Serper base URL [env SERPER_BASE_URL]")]
AllowHost = Annotated[Optional[list[str]], typer.Option("--allow-host", help="host[:port] that page reads may reach although it is private or loopback (repeatable) [env FATHOM_ALLOW_HOSTS]")]
MaxRounds = Annotated[Optional[int], typer.Option("--max-rounds", help="Model turns before a final answer is forced [env FATHOM_MAX_ROUNDS; default 64]")]
MaxCalls = Annotated[Optional[int], typer.Option("--max-calls-per-turn", help="Tool calls run per turn [default 8]")]
MaxWall = Annotated[Optional[float], typer.Option("--max-wall-seconds", help="Wall-clock budget of one invocation [default 3600]")]
PromptFile = Annotated[Optional[Path], typer.Option("--prompt-file", help="Search system prompt file, used byte for byte; {func_schemas} is replaced [env FATHOM_PROMPT_FILE]")]
DbUrl = Annotated[Optional[str], typer.Option("--db", help="Run database: sqlite:///PATH, postgresql://…, mysql://… [env FATHOM_DB_URL; default: a SQLite file in the user data dir]")]
ReviewPlan = Annotated[bool, typer.Option("--review-plan", help="Pause after the report plan to accept, edit or abort it (implies --deepresearch)")]
PlanAction = Annotated[Optional[str], typer.Option("--plan-action", help="Answer the plan review without asking: accept or abort")]
PlanFile = Annotated[Optional[Path], typer.Option("--plan-file", help="Answer the plan review with this edited plan")]
ReportOut = Annotated[Optional[Path], typer.Option("--out", help="Report file (default <run_id>.md or .html here)")]
ReportFormatOpt = Annotated[str, typer.Option("--format", help="Report format: md or html")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings (a [fathom] table or top-level keys)")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither reuse nor store cached searches, pages and evidence [env FATHOM_NO_CACHE]")]


@app.callback()
def root() -> None:
    """Durable deep research with small models (Fathom-Search-4B on SGLang)."""


def load_settings(config_file: Path | None, **flags: Any) -> Settings:
    try:
        return Settings.load(flags, config_file=config_file)
    except SettingsError as exc:
        fail(str(exc), EXIT_USAGE)


@app.command()
def research(
    question: Annotated[str, typer.Argument(help="The question to research.")],
    search_model_url: SearchModelUrl = None,
    synth_model_url: SynthModelUrl = None,
    query_llm: QueryLlm = None,
    search_backend: SearchBackend = None,
    search_protocol: SearchProtocolOpt = None,
    searxng_url: SearxngUrl = None,
    serper_url: SerperUrl = None,
    allow_host: AllowHost = None,
    max_rounds: MaxRounds = None,
    max_calls_per_turn: MaxCalls = None,
    max_wall_seconds: MaxWall = None,
    prompt_file: PromptFile = None,
    config: ConfigFile = None,
    db: DbUrl = None,
    no_cache: NoCache = False,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Id of the run (default: a new one)")] = None,
    deepresearch: Annotated[bool, typer.Option("--deepresearch", help="Also write a cited report with Fathom-Synthesizer")] = False,
    review_plan: ReviewPlan = False,
    plan_action: PlanAction = None,
    plan_file: PlanFile = None,
    out: ReportOut = None,
    report_format: ReportFormatOpt = "md",
    language: Annotated[Optional[str], typer.Option("--language", help="Language of the report [env FATHOM_LANGUAGE; default English]")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Accept the model's answer without checking it")] = False,
    synth_prompt_file: Annotated[Optional[Path], typer.Option("--synth-prompt-file", help="Synthesizer system prompt file, used byte for byte [env FATHOM_SYNTH_PROMPT_FILE]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output")] = False,
) -> None:
    """Research QUESTION with the search model and print the answer (and write a report with --deepresearch)."""
    if not question.strip():
        fail("the question is empty", EXIT_USAGE)
    settings = load_settings(
        config,
        search_model_url=search_model_url,
        synth_model_url=synth_model_url,
        query_llm=query_llm,
        search_backend=search_backend,
        search_protocol=search_protocol,
        searxng_url=searxng_url,
        serper_url=serper_url,
        allow_hosts=tuple(allow_host) if allow_host else None,
        max_rounds=max_rounds,
        max_calls_per_turn=max_calls_per_turn,
        max_wall_seconds=max_wall_seconds,
        prompt_file=prompt_file,
        db_url=db,
        no_cache=True if no_cache else None,
        language=language,
        verify=False if no_verify else None,
        synth_prompt_file=synth_prompt_file,
    )
    for flag, path in (("--prompt-file", prompt_file), ("--synth-prompt-file", synth_prompt_file), ("--plan-file", plan_file)):
        if path is not None and not path.is_file():
            fail(f"{flag} {path} does not exist", EXIT_USAGE)
    if report_format not in ("md", "html"):
        fail("--format must be md or html", EXIT_USAGE)
    run_id = run_id or new_run_id()
    if quiet:
        logging.getLogger("fathom").setLevel(logging.ERROR)
    progress = ProgressPrinter(stderr, enabled=not quiet)
    progress.start(run_id, question, settings)
    summary = run_and_report(
        lambda: runner.research(
            question.strip(),
            settings,
            run_id=run_id,
            deepresearch=deepresearch or review_plan,
            review_plan=review_plan,
            on_event=progress.handle,
        ),
        run_id,
    )
    summary = review_until_decided(summary, settings.db_url, progress, plan_action=plan_action, plan_file=plan_file)
    finish(summary, progress, as_json=as_json, out=out, report_format=report_format)


def review_until_decided(
    summary: dict[str, Any], db: str | None, progress: ProgressPrinter, *, plan_action: str | None, plan_file: Path | None
) -> dict[str, Any]:
    """While the run waits at its plan review, ask for a decision and resume with it."""
    run_id = summary["run_id"]
    while "review" in summary:
        decision = plan_decision(summary["review"], action=plan_action, plan_file=plan_file, console=stderr)
        if decision is None:
            fail(f"run {run_id} is waiting for its plan to be reviewed: continue with 'fathom resume {run_id}'", EXIT_REVIEW)
        summary = run_and_report(
            lambda: runner.resume(run_id, {}, db_url=db, decision=decision, on_event=progress.handle), run_id
        )
        plan_action = plan_file = None  # a flag answers once; a rejected answer asks again
    return summary


def finish(summary: dict[str, Any], progress: ProgressPrinter, *, as_json: bool, out: Path | None, report_format: str) -> None:
    """Save the report (if any), then print the answer or JSON and exit with the run's code."""
    if summary.get("report"):
        path = save_report(summary, out, report_format)  # type: ignore[arg-type]
        summary = {**summary, "report_path": str(path)}
        progress.print(f"report written to {escape(str(path))}")
    print_result(summary, progress, as_json=as_json)


def run_and_report(make: Any, run_id: str) -> dict[str, Any]:
    """Run a research coroutine, mapping every failure to one line and an exit code."""
    try:
        return asyncio.run(make())
    except KeyboardInterrupt:
        fail(f"interrupted: run {run_id} can be continued with 'fathom resume {run_id}'", EXIT_INTERRUPTED)
    except UnknownRunError as exc:
        fail(str(exc), EXIT_USAGE)
    except CheckpointStoreError as exc:
        fail(str(exc), EXIT_STORE)
    except ModelError as exc:
        fail(f"{exc} (run {run_id} can be continued with 'fathom resume {run_id}')", EXIT_MODEL)
    except (SettingsError, ToolError, ValueError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)


def print_result(summary: dict[str, Any], progress: ProgressPrinter, *, as_json: bool) -> None:
    progress.finish(summary)
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    elif summary["answer"]:
        sys.stdout.write(summary["answer"] + "\n")
    if summary["status"] != "answered":
        fail(summary.get("error") or "the run ended without an answer", EXIT_NO_ANSWER)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (see 'fathom runs list').")],
    db: DbUrl = None,
    search_model_url: SearchModelUrl = None,
    synth_model_url: SynthModelUrl = None,
    query_llm: QueryLlm = None,
    search_backend: SearchBackend = None,
    searxng_url: SearxngUrl = None,
    serper_url: SerperUrl = None,
    allow_host: AllowHost = None,
    max_rounds: MaxRounds = None,
    max_wall_seconds: MaxWall = None,
    no_cache: NoCache = False,
    plan_action: PlanAction = None,
    plan_file: PlanFile = None,
    out: ReportOut = None,
    report_format: ReportFormatOpt = "md",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output")] = False,
) -> None:
    """Continue an interrupted run from its last checkpoint, with its original options.

    Flags given here override the run's options (for example a new --search-model-url).
    Tool calls that finished before the interruption are not run again.
    """
    if quiet:
        logging.getLogger("fathom").setLevel(logging.ERROR)
    flags = {
        "search_model_url": search_model_url,
        "synth_model_url": synth_model_url,
        "query_llm": query_llm,
        "search_backend": search_backend,
        "searxng_url": searxng_url,
        "serper_url": serper_url,
        "allow_hosts": tuple(allow_host) if allow_host else None,
        "max_rounds": max_rounds,
        "max_wall_seconds": max_wall_seconds,
        "no_cache": True if no_cache else None,
    }
    progress = ProgressPrinter(stderr, enabled=not quiet)
    progress.print(f"[bold]resuming run[/] {run_id}")
    summary = run_and_report(
        lambda: runner.resume(run_id, flags, db_url=db_url_of(db), on_event=progress.handle), run_id
    )
    summary = review_until_decided(summary, db_url_of(db), progress, plan_action=plan_action, plan_file=plan_file)
    finish(summary, progress, as_json=as_json, out=out, report_format=report_format)


def db_url_of(flag: str | None) -> str | None:
    """The database: --db, else FATHOM_DB_URL, else the default file (None)."""
    return flag or os.environ.get("FATHOM_DB_URL") or None


runs_app = typer.Typer(help="List, show, export and delete recorded runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


def with_store(work: Any) -> Any:
    """Open the run database, run ``work(store)``, and map store errors to one line."""

    async def go(db: str | None) -> Any:
        async with open_store(db) as store:
            return await work(store)

    def call(db: str | None) -> Any:
        try:
            return asyncio.run(go(db_url_of(db)))
        except UnknownRunError as exc:
            fail(str(exc), EXIT_USAGE)
        except CheckpointStoreError as exc:
            fail(str(exc), EXIT_STORE)

    return call


async def _record_or_fail(store: Store, run_id: str) -> RunRecord:
    record = await store.runs.get(run_id)
    if record is None:
        raise UnknownRunError(f"no run {run_id!r} in {store.db.url}")
    return record


def _age(when: datetime) -> str:
    seconds = max(0, int((datetime.now(timezone.utc) - when).total_seconds()))
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
    status: Annotated[Optional[str], typer.Option("--status", help="running, interrupted, failed or done")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    db: DbUrl = None,
) -> None:
    """List runs, newest first."""
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
        stderr.print("no runs yet" if status is None else f"no {status} runs")
        return
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

    async def work(store: Store) -> tuple[RunRecord, str, dict[str, Any]]:
        record = await _record_or_fail(store, run_id)
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
            f"{citations.get('removed', 0)} removed, {citations.get('unused', 0)} sources unused"
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
    if fmt not in ("json", "md", "html"):
        fail("--format must be json, md or html", EXIT_USAGE)

    async def work(store: Store) -> tuple[RunRecord, dict[str, Any]]:
        record = await _record_or_fail(store, run_id)
        return record, await runner.load_state(store, run_id)

    record, values = with_store(work)(db)
    values = {"question": record.question, **values}
    summary = run_summary(run_id, values)
    if fmt == "json":
        text = json.dumps(export_json(run_id, values, _record_json(record, record.status)), ensure_ascii=False, indent=2) + "\n"
    elif fmt == "html":
        if not summary["report"]:
            fail(f"run {run_id} has no report (it was not run with --deepresearch)", EXIT_USAGE)
        text = render_report(summary, "html")
    else:  # the report (when there is one), then the full research trace
        report = render_report(summary, "md") + "\n---\n\n" if summary["report"] else ""
        text = report + export_markdown(run_id, values)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        stderr.print(f"wrote {out}")


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
    stderr.print(f"deleted run {run_id}")


cache_app = typer.Typer(help="The cache of searches, pages and evidence, kept in the run database.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(db: DbUrl = None) -> None:
    """Delete every cached search, page and evidence entry."""

    async def work(store: Store) -> dict[str, int]:
        return await ToolCache(store.db).clear()

    print_cache_sizes(with_store(work)(db), verb="cleared the cache", console=stderr)


@cache_app.command("stats")
def cache_stats(db: DbUrl = None) -> None:
    """How many searches, pages and evidence entries are cached."""

    async def work(store: Store) -> dict[str, int]:
        return await ToolCache(store.db).sizes()

    print_cache_sizes(with_store(work)(db), verb="cached", console=Console(highlight=False))


corpus_app = typer.Typer(help="Index local files (.md, .txt, .html, .pdf) to research with --search-backend local.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
CorpusDir = Annotated[Path, typer.Argument(help="A directory (searched recursively).")]


def corpus_call(work: Any, db: str | None) -> Any:
    """``with_store`` for corpus commands: a corpus refusal is one line and exit 2."""
    try:
        return with_store(lambda store: work(Corpus(store.db)))(db)
    except ToolError as exc:
        fail(str(exc), EXIT_USAGE)


@corpus_app.command("index")
def corpus_index(
    directory: CorpusDir,
    db: DbUrl = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Index (or re-index: only changed files are read) the files under DIRECTORY."""

    async def work(corpus: Corpus) -> Any:
        return await index_with_progress(corpus, directory, stderr, quiet=quiet)

    print_index_report(corpus_call(work, db), stderr)


@corpus_app.command("stats")
def corpus_stats(
    db: DbUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
) -> None:
    """The indexed directories, with their file counts."""

    async def work(corpus: Corpus) -> Any:
        return await corpus.stats()

    print_corpus_stats(corpus_call(work, db), as_json=as_json, console=stderr)


@corpus_app.command("remove")
def corpus_remove(directory: CorpusDir, db: DbUrl = None) -> None:
    """Forget DIRECTORY and everything indexed under it (the files themselves are untouched)."""

    async def work(corpus: Corpus) -> int:
        return await corpus.remove(directory)

    removed = corpus_call(work, db)
    stderr.print(f"removed {escape(str(directory))} from the corpus ({removed} files)")


def _command_path(ctx: Any) -> str:
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["fathom", *reversed(names)])


def main() -> None:
    """Console-script entry point. Usage errors are one line, like every other error."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = app(standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        raise SystemExit(0) from None
    except click_exceptions.UsageError as exc:
        hint = f" (see '{_command_path(exc.ctx)} --help')" if exc.ctx is not None else ""
        sys.stderr.write(f"fathom: error: {' '.join(exc.format_message().split())}{hint}\n")
        raise SystemExit(EXIT_USAGE) from None
    except click_exceptions.Abort:
        sys.stderr.write("fathom: error: aborted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
