"""The CLI's side of deep research: the plan review prompt, and saving the report to a file."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel

from fathom.app.report import ReportFormat, report_document
from fathom.errors import ConfigError


def plan_decision(
    request: dict[str, Any],
    *,
    action: str | None,
    plan_file: Path | None,
    console: Console,
) -> Any:
    """The human's answer to a plan review: from the flags, an interactive prompt, or stdin.

    Returns a resume value for the review node, or None when no decision is available (the run
    then stays waiting, and ``fathom resume`` asks again).
    """
    if plan_file is not None:
        return {"action": "edit", "plan": _read(plan_file, "--plan-file")}
    if action is not None:
        return action
    if sys.stdin.isatty():
        return _ask(request, console)
    text = sys.stdin.read()
    if not text.strip():
        return None
    first, _, rest = text.lstrip().partition("\n")
    if first.strip().lower() == "edit":
        return {"action": "edit", "plan": rest}
    return first.strip().lower()


def _ask(request: dict[str, Any], console: Console) -> Any:
    if request.get("error"):
        console.print(f"[red]{request['error']}[/]")
    console.print(Panel(Markdown(request.get("plan") or "(empty plan)"), title="Report plan", expand=False))
    while True:
        choice = console.input("[bold]Write the report with this plan?[/] [a]ccept, [e]dit, a[b]ort: ").strip().lower()
        if choice in ("a", "accept", ""):
            return "accept"
        if choice in ("b", "abort", "q", "quit"):
            return "abort"
        if choice in ("e", "edit"):
            edited = edit_in_editor(request.get("plan") or "")
            return {"action": "edit", "plan": edited} if edited.strip() else "accept"


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{flag} {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def edit_in_editor(text: str) -> str:
    """Open ``text`` in ``$VISUAL``/``$EDITOR`` (default ``vi``) and return what the user saved."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as handle:
        handle.write(text)
        path = handle.name
    try:
        subprocess.run([*shlex.split(editor), path], check=True)
        return Path(path).read_text(encoding="utf-8")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"the editor {editor!r} failed: {exc}") from None
    finally:
        os.unlink(path)


def save_report(summary: dict[str, Any], out: Path | None, fmt: ReportFormat) -> Path:
    """Write the report to ``out`` (default ``<run_id>.md`` or ``.html`` here) and return the path."""
    path = out or Path(f"{summary['run_id']}.{fmt}")
    try:
        path.write_text(report_document(summary, fmt), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"the report cannot be written to {path}: {exc.strerror or exc}") from None
    return path
