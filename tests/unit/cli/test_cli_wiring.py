"""The command line's wiring, checked without running it: shared options, statuses, exit codes."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
import typer
from rich.console import Console

import fathom.cli
from fathom.cli.main import app
from fathom.cli.options import (
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_NO_ANSWER,
    EXIT_REVIEW,
    EXIT_STORE,
    EXIT_USAGE,
    RunOptions,
    exit_code_of,
    exit_code_of_status,
)
from fathom.cli.progress import ProgressPrinter
from fathom.cli.runs import STATUS_HELP
from fathom.errors import (
    ConfigError,
    ModelError,
    RunError,
    RunStoppedByStoreError,
    StoreError,
    ToolError,
    UnknownRunError,
)
from fathom.settings import ENV_VARS, SECRET_ENV_VARS, Settings
from fathom.store import RUN_STATUSES

# What only starting a run means: resume continues a recorded run with its own question and id.
ONLY_FOR_A_NEW_RUN = {"question", "run_id", "deepresearch", "review_plan"}


def command_params(name: str) -> dict[str, tuple[str, ...]]:
    group = typer.main.get_command(app)
    command = group.commands[name]  # type: ignore[attr-defined]
    return {param.name: tuple(param.opts) for param in command.params}


def test_resume_accepts_every_option_of_research_that_configures_a_run() -> None:
    research, resume = command_params("research"), command_params("resume")
    shared = {name: opts for name, opts in research.items() if name not in ONLY_FOR_A_NEW_RUN}
    assert {name: resume.get(name) for name in shared} == shared
    assert set(resume) == set(shared) | {"run_id"}


def test_every_run_option_reaches_the_settings_or_the_output() -> None:
    """A flag added to RunOptions but not passed on would be silently ignored."""
    output = {"config", "plan_action", "plan_file", "out", "report_format", "as_json", "quiet"}
    renamed = {"allow_host": "allow_hosts", "no_verify": "verify", "db": "db_url",
               "local": "search_model_url"}  # --local names both model URLs (see tests/unit/models/test_local.py)
    flags = RunOptions().settings_flags()
    for field in dataclasses.fields(RunOptions):
        if field.name not in output:
            assert renamed.get(field.name, field.name) in flags, field.name
    assert set(flags) <= set(Settings.model_fields)


def test_given_flags_become_settings() -> None:
    opts = RunOptions(allow_host=["a:1", "b"], no_verify=True, no_cache=True, max_calls_per_turn=2, db="x.db")
    flags = opts.settings_flags()
    assert flags["allow_hosts"] == ("a:1", "b") and flags["verify"] == "off" and flags["no_cache"] is True
    assert flags["max_calls_per_turn"] == 2 and flags["db_url"] == "x.db"
    assert RunOptions().settings_flags()["verify"] is None  # not given: the run's own setting stands
    assert RunOptions(verify="strict").settings_flags()["verify"] == "strict"


def test_a_config_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        RunOptions(config=tmp_path).load_settings()
    with pytest.raises(ConfigError, match="cannot be read"):
        RunOptions(config=tmp_path).db_url()


def test_the_status_help_lists_the_run_statuses() -> None:
    words = STATUS_HELP.split(": ", 1)[1].replace(" (for plan review)", "").replace(" or ", ", ").split(", ")
    assert tuple(words) == RUN_STATUSES


@pytest.mark.parametrize(
    "error, code",
    [
        (ConfigError("x"), EXIT_USAGE),
        (RunError("x"), EXIT_USAGE),
        (UnknownRunError("x"), EXIT_USAGE),
        (ToolError("x"), EXIT_USAGE),
        (ModelError("x"), EXIT_MODEL),
        (StoreError("x"), EXIT_STORE),
    ],
)
def test_expected_failures_have_their_exit_codes(error: Exception, code: int) -> None:
    assert exit_code_of(error) == code  # type: ignore[arg-type]


def test_every_status_has_an_exit_code() -> None:
    codes = {status: exit_code_of_status(status) for status in RUN_STATUSES}
    assert codes == {
        "running": EXIT_NO_ANSWER,
        "waiting": EXIT_REVIEW,
        "interrupted": EXIT_INTERRUPTED,
        "answered": 0,
        "unanswered": EXIT_NO_ANSWER,
        "failed": EXIT_NO_ANSWER,
    }


def test_only_the_settings_read_the_environment() -> None:
    """FATHOM_DB_URL and every other setting come from fathom.settings, never the CLI itself
    (which reads only $VISUAL/$EDITOR, to edit a plan)."""
    variables = {*ENV_VARS.values(), *SECRET_ENV_VARS.values()}
    for path in Path(fathom.cli.__file__).parent.glob("*.py"):
        for line in path.read_text().splitlines():
            assert not re.search(r"envvar\s*=", line), f"{path.name}: {line.strip()}"  # typer reading env
            if re.search(r"\benviron\b|getenv", line):
                assert not any(var in line for var in variables), f"{path.name}: {line.strip()}"
                assert "VISUAL" in line or "EDITOR" in line, f"{path.name}: {line.strip()}"


def progress_lines(*events: dict) -> list[str]:
    out = io.StringIO()
    printer = ProgressPrinter(Console(file=out, width=200, color_system=None))
    for event in events:
        printer.handle(event)
    return out.getvalue().splitlines()


def test_a_failed_tool_call_says_why_in_one_short_line() -> None:
    error = "[error] could not fetch https://example.org/page: HTTP 404 Not Found\nmore detail\n" + "x" * 500
    [line] = progress_lines({"event": "tool_end", "name": "query_url", "ok": False, "urls": [], "error": error})
    assert line == "  ✗ query_url: could not fetch https://example.org/page: HTTP 404 Not Found"
    [long] = progress_lines({"event": "tool_end", "name": "search_urls", "ok": False, "error": "[error] " + "y" * 500})
    assert long.startswith("  ✗ search_urls: yyy") and long.endswith("…") and len(long) < 160
    [ok] = progress_lines({"event": "tool_end", "name": "search_urls", "ok": True, "urls": ["a", "b"]})
    assert ok == "  ✓ search_urls 2 results"


def test_the_verify_line_says_what_decided() -> None:
    [line] = progress_lines({"event": "verify", "accepted": True, "verdict": "supported",
                             "decided_by": "verbatim in evidence"})
    assert line == "  verify: supported (verbatim in evidence)"
    [line] = progress_lines({"event": "verify", "accepted": True, "verdict": "unverified", "decided_by": ""})
    assert line == "  verify: unverified"


def test_a_fold_and_unsourced_claims_show_in_the_progress() -> None:
    [fold] = progress_lines({"event": "fold", "round": 18, "results": 24, "before": 30600, "after": 9100})
    assert fold == "  context folded: 24 older tool results to digests, ~30600 → ~9100 tokens"
    [clean] = progress_lines({"event": "write", "ok": True, "kept": 12, "removed": 1, "unsourced": 0})
    assert clean == "  ✓ report written: 12 citations kept, 1 removed"
    [marked] = progress_lines({"event": "write", "ok": True, "kept": 12, "removed": 3, "unsourced": 2})
    assert marked.endswith("3 removed, 2 claims left unsourced")


@pytest.mark.parametrize(
    ("raised", "code", "hint"),
    [
        (ModelError("the search model at http://127.0.0.1:9 is down"), EXIT_MODEL, "'fathom resume r1'"),
        (RunStoppedByStoreError("cannot write sqlite:///x.db: disk is full", "r1"), EXIT_STORE,
         "once the database works again, 'fathom resume r1' continues the run"),
    ],
)
def test_a_stopped_run_names_its_resume_command(raised, code, hint, capsys):
    from fathom.cli.main import run_and_report

    async def stops() -> dict:
        raise raised

    with pytest.raises(typer.Exit) as exited:
        run_and_report(stops, "r1")
    err = capsys.readouterr().err
    assert exited.value.exit_code == code and err.count("\n") == 1 and str(raised) in err and hint in err
