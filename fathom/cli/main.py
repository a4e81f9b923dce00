"""The ``fathom`` command line: the typer app, ``research`` and ``resume``, and the entry point
that turns every failure into one line on stderr and an exit code (see the README).

Nothing heavy is imported at module level: the graph, the store and rich are imported by the
commands that use them, so ``fathom --help`` answers at once.
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

# typer >= 0.29 vendors click and has no public name for its usage errors.
from typer._click import exceptions as click_exceptions

from fathom.aio import run_own_loop
from fathom.cli.eval import eval_app
from fathom.cli.mcp import mcp as mcp_command
from fathom.cli.options import (
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_REVIEW,
    EXIT_STORE,
    EXIT_USAGE,
    RunOptions,
    exit_code_of,
    exit_code_of_status,
    fail,
    report_bug,
    run_options,
    stderr,
)
from fathom.cli.prompts import datasets_app, prompts_app
from fathom.cli.runs import cache_app, corpus_app, runs_app
from fathom.cli.serve import serve_app
from fathom.errors import FathomError, ModelError, RunStoppedByStoreError
from fathom.startup import collector_paused

if TYPE_CHECKING:
    from fathom.cli.progress import ProgressPrinter

DISTRIBUTION = "fathom-deepresearch"

app = typer.Typer(
    name="fathom",
    help="Durable deep research with small models (Fathom-Search-4B on SGLang).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: "[env …; default …]" notes must survive
)


def version() -> str:
    """The installed distribution's version (the package's own when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from fathom import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"fathom {version()}\n")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit")
    ] = False,
) -> None:
    """Durable deep research with small models (Fathom-Search-4B on SGLang)."""


@app.command()
@run_options
def research(
    question: Annotated[str, typer.Argument(help="The question to research.")],
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Id of the run [default a new one]")] = None,
    deepresearch: Annotated[
        bool, typer.Option("--deepresearch", help="Also write a cited report with Fathom-Synthesizer")
    ] = False,
    review_plan: Annotated[
        bool,
        typer.Option("--review-plan", help="Pause after the report plan to accept, edit or abort it (implies --deepresearch)"),
    ] = False,
    opts: RunOptions = RunOptions(),  # replaced by the options' own flags (see run_options)
) -> None:
    """Research QUESTION with the search model and print the answer (and write a report with --deepresearch)."""
    if not question.strip():
        fail("the question is empty", EXIT_USAGE)
    settings = opts.load_settings()
    opts.check()
    with collector_paused(freeze=True):  # the research stack: see fathom/startup.py
        from fathom.app import runs as runner

    run_id = run_id or runner.new_run_id()
    progress = start_progress(opts)
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
    summary = review_until_decided(summary, settings.db_url, progress, opts)
    finish(summary, progress, opts)


@app.command()
@run_options
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (see 'fathom runs list').")],
    opts: RunOptions = RunOptions(),  # replaced by the options' own flags (see run_options)
) -> None:
    """Continue an interrupted run from its last checkpoint, with its original options.

    Flags (and --config) given here override the run's options, for example a new
    --search-model-url. Tool calls that finished before the interruption are not run again.
    """
    opts.check()
    db_url = opts.db_url()
    with collector_paused(freeze=True):  # the research stack: see fathom/startup.py
        from fathom.app import runs as runner

    progress = start_progress(opts)
    summary = run_and_report(
        lambda: runner.resume(
            run_id, opts.settings_flags(), db_url=db_url, config_file=opts.config, on_event=progress.handle
        ),
        run_id,
    )
    summary = review_until_decided(summary, db_url, progress, opts)
    finish(summary, progress, opts)


app.add_typer(runs_app, name="runs")
app.add_typer(cache_app, name="cache")
app.add_typer(corpus_app, name="corpus")
app.add_typer(prompts_app, name="prompts")
app.add_typer(datasets_app, name="datasets")
app.add_typer(serve_app, name="serve")
app.add_typer(eval_app, name="eval")
app.command(name="mcp")(mcp_command)


def start_progress(opts: RunOptions) -> ProgressPrinter:
    from fathom.cli.progress import ProgressPrinter

    if opts.quiet:
        logging.getLogger("fathom").setLevel(logging.ERROR)
    return ProgressPrinter(stderr(), enabled=not opts.quiet)


def review_until_decided(
    summary: dict[str, Any], db: str | None, progress: ProgressPrinter, opts: RunOptions
) -> dict[str, Any]:
    """While the run waits at its plan review, ask for a decision and resume with it."""
    with collector_paused(freeze=True):  # the research stack: see fathom/startup.py
        from fathom.app import runs as runner
    from fathom.cli.review import plan_decision

    run_id = summary["run_id"]
    plan_action, plan_file = opts.plan_action, opts.plan_file
    while "review" in summary:
        decision = plan_decision(summary["review"], action=plan_action, plan_file=plan_file, console=stderr())
        if decision is None:
            fail(f"run {run_id} is waiting for its plan to be reviewed: continue with 'fathom resume {run_id}'", EXIT_REVIEW)
        summary = run_and_report(
            lambda answer=decision: runner.resume(run_id, {}, db_url=db, decision=answer, on_event=progress.handle),
            run_id,
        )
        plan_action = plan_file = None  # a flag answers once; a rejected answer asks again
    return summary


def finish(summary: dict[str, Any], progress: ProgressPrinter, opts: RunOptions) -> None:
    """Save the report (if any), print the answer or JSON, and exit with the run's status code."""
    import json

    from rich.markup import escape

    from fathom.cli.review import save_report

    if summary.get("report"):
        path = save_report(summary, opts.out, opts.report_format)  # type: ignore[arg-type]
        summary = {**summary, "report_path": str(path)}
        progress.print(f"report written to {escape(str(path))}")
    progress.finish(summary)
    if opts.as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    elif summary["answer"]:
        sys.stdout.write(summary["answer"] + "\n")
    if (code := exit_code_of_status(summary["status"])) != 0:
        fail(summary.get("error") or _why_not_answered(summary), code)


def _why_not_answered(summary: dict[str, Any]) -> str:
    if summary["answer"] and summary.get("report_status") not in (None, "written", "aborted"):
        return f"the report could not be written (report status: {summary.get('report_status') or 'none'})"
    return "the run ended without an answer"


def run_and_report(make: Callable[[], Awaitable[dict[str, Any]]], run_id: str) -> dict[str, Any]:
    """Run a research coroutine; an interruption or a model failure says how to resume.

    Other expected failures (:class:`FathomError`) reach :func:`main`, which maps them to codes.
    """

    try:
        return run_own_loop(make())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        fail(f"interrupted: run {run_id} can be continued with 'fathom resume {run_id}'", EXIT_INTERRUPTED)
    except ModelError as exc:
        fail(f"{exc} (run {run_id} can be continued with 'fathom resume {run_id}')", EXIT_MODEL)
    except RunStoppedByStoreError as exc:
        fail(f"{exc} (once the database works again, 'fathom resume {exc.run_id}' continues the run)", EXIT_STORE)


# ---- the entry point -----------------------------------------------------------------------------


def _command_path(ctx: Any) -> str:
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["fathom", *reversed(names)])


def _error(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"fathom: error: {' '.join(message.split())}\n")
    raise SystemExit(code)


def _usage_error(exc: click_exceptions.UsageError) -> NoReturn:
    message = exc.format_message()
    if isinstance(exc, click_exceptions.NoSuchOption):
        message = exc.message  # click's suggestions are any option sharing a few letters
        if exc.ctx is not None and (close := _close_options(exc.option_name, exc.ctx.command)):
            message += f" (did you mean {' or '.join(close)}?)"
    hint = f" (see '{_command_path(exc.ctx)} --help')" if exc.ctx is not None else ""
    _error(f"{message}{hint}", EXIT_USAGE)


def _close_options(name: str, command: Any) -> list[str]:
    """Options of ``command`` spelled almost like ``name`` (a typo, not a different word)."""
    known = {opt.lstrip("-"): opt for param in command.params for opt in getattr(param, "opts", ())}
    return [known[k] for k in difflib.get_close_matches(name.lstrip("-"), list(known), n=2, cutoff=0.8)]


def main() -> None:
    """Console-script entry point: every outcome is an exit code, every failure one line on stderr.

    Expected failures are :class:`FathomError`s (``exit_code_of``); anything else is a bug, whose
    traceback goes to a log file named in the one line.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = app(standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:  # `fathom`, `fathom runs`: the help, once
        sys.stdout.write(exc.ctx.get_help() + "\n")
        code = 0
    except click_exceptions.UsageError as exc:
        _usage_error(exc)
    except typer.Abort:
        _error("aborted", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        _error("interrupted", EXIT_INTERRUPTED)
    except FathomError as exc:
        _error(str(exc) or type(exc).__name__, exit_code_of(exc))
    except Exception as exc:  # a bug
        report_bug(exc)
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
