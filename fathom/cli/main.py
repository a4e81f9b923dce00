"""The ``fathom`` command line: research a question, with live progress on stderr."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

try:  # typer >= 0.2x vendors its own click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on real click
    from click import exceptions as click_exceptions
from rich.markup import escape

from fathom.app import runs as runner
from fathom.app.runs import new_run_id
from fathom.cli.options import (
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_NO_ANSWER,
    EXIT_REVIEW,
    EXIT_STORE,
    EXIT_USAGE,
    DbUrl,
    db_url_of,
    fail,
    stderr,
)
from fathom.cli.progress import ProgressPrinter
from fathom.cli.review import plan_decision, save_report
from fathom.cli.runs import cache_app, corpus_app, runs_app
from fathom.models.base import ModelError
from fathom.settings import ConfigError, Settings
from fathom.store import StoreError, UnknownRunError
from fathom.tools.base import ToolError

app = typer.Typer(
    name="fathom",
    help="Durable deep research with small models (Fathom-Search-4B on SGLang).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    except ConfigError as exc:
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
    except StoreError as exc:
        fail(str(exc), EXIT_STORE)
    except ModelError as exc:
        fail(f"{exc} (run {run_id} can be continued with 'fathom resume {run_id}')", EXIT_MODEL)
    except (ConfigError, ToolError, ValueError, OSError) as exc:
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
    summary = run_and_report(
        lambda: runner.resume(run_id, flags, db_url=db_url_of(db), on_event=progress.handle), run_id
    )
    summary = review_until_decided(summary, db_url_of(db), progress, plan_action=plan_action, plan_file=plan_file)
    finish(summary, progress, as_json=as_json, out=out, report_format=report_format)


app.add_typer(runs_app, name="runs")
app.add_typer(cache_app, name="cache")
app.add_typer(corpus_app, name="corpus")


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
