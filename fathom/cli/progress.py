"""Live progress of a run on stderr: rounds, tool calls, URLs read, tokens used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from fathom.settings import Settings

ARG_PREVIEW = 90
ERROR_PREVIEW = 120


def _preview(args: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return _shorten(text, ARG_PREVIEW)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(error: str) -> str:
    """Why a tool call failed: the first line of its ``[error] …`` text, shortened."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    first = lines[0].removeprefix("[error]").strip() if lines else ""
    return _shorten(first, ERROR_PREVIEW)


class ProgressPrinter:
    """Turns the graph's progress events into readable lines; silent when disabled."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def start(self, run_id: str, question: str, settings: Settings) -> None:
        self.print(f"[bold]run[/] {run_id}  ·  {escape(question)}")
        self.print(
            f"[dim]search model {settings.search_model_url} ({settings.search_protocol}) · "
            f"search {settings.resolved_search_backend} · max {settings.max_rounds} rounds[/]"
        )
        if not self.enabled:
            return
        from fathom.app.services import search_prompt_of, synth_prompt_of

        search, synth = search_prompt_of(settings), synth_prompt_of(settings)
        self.print(
            f"[dim]prompt {escape(search.source)} (sha256 {search.sha256[:12]}) · "
            f"synthesizer prompt {escape(synth.source)} (sha256 {synth.sha256[:12]})[/]"
        )

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "resume":
            self.print(f"[bold]resuming run[/] {event['run_id']}: {escape(event['question'])}")
        elif kind == "turn":
            forced = f" [yellow](final answer forced: {escape(event['forced'])})[/]" if event.get("forced") else ""
            self.print(f"[bold cyan]round {event['round']}[/]{forced}")
        elif kind == "fold":
            self.print(
                f"  [dim]context folded: {event['results']} older tool results to digests, "
                f"~{event['before']} → ~{event['after']} tokens[/]"
            )
        elif kind == "model":
            usage = event.get("usage") or {}
            self.print(
                f"  [dim]model: {usage.get('completion_tokens', 0)} tokens written, "
                f"{usage.get('prompt_tokens', 0)} read ({usage.get('cached_tokens', 0)} cached)"
                f"{', cut off' if event.get('finish_reason') == 'length' else ''}[/]"
            )
            for error in event.get("invalid") or []:
                self.print(f"  [red]✗ bad tool call:[/] {escape(str(error))}")
            if event.get("answer") is not None:
                self.print(f"  [green]answer:[/] {escape(str(event['answer']))[:200]}")
        elif kind == "model_wait":
            silent = event.get("silent_s") or 0
            limit = event.get("answer_timeout_s") or 0
            quiet = f"; silent for {silent:g} s, given up at {limit:g} s" if limit and silent * 2 >= limit else ""
            self.print(
                f"  [yellow]… still waiting for the {escape(str(event.get('model') or 'model'))} at "
                f"{escape(str(event.get('url') or ''))} ({event.get('waited_s', 0):g} s){quiet}[/]"
            )
        elif kind == "tool_start":
            self.print(f"  → {event['name']}({escape(_preview(event.get('args') or {}))})")
        elif kind == "tool_end":
            urls = event.get("urls") or []
            if event.get("ok"):
                detail = f"{len(urls)} results" if event["name"] in ("search_urls", "search_pages") else ", ".join(urls[:1])
                self.print(f"  [green]✓[/] {event['name']} {escape(detail)}")
            else:
                reason = _reason(str(event.get("error") or "")) or "failed"
                self.print(f"  [red]✗[/] {event['name']}: {escape(reason)}")
        elif kind == "verify":
            if not event.get("accepted"):
                self.print(f"  [yellow]verify: sent back[/] {escape(event.get('note', ''))}")
            elif event.get("verdict"):
                by = f" ({event['decided_by']})" if event.get("decided_by") else ""
                self.print(f"  [dim]verify: {escape(str(event['verdict']) + by)}[/]")
        elif kind == "plan_start":
            self.print("[bold cyan]plan[/] [dim]Fathom-Synthesizer is planning the report…[/]")
        elif kind == "plan":
            lines = [line for line in (event.get("plan") or "").splitlines() if line.strip()]
            for line in lines[:12]:
                self.print(f"  [dim]{escape(line[:160])}[/]")
            if len(lines) > 12:
                self.print(f"  [dim]… {len(lines) - 12} more lines[/]")
        elif kind == "write_start":
            self.print("[bold cyan]write[/] [dim]writing the report…[/]")
        elif kind == "write_continue":
            self.print(f"  [dim]report cut by the token limit: continuing ({event['continuation']})[/]")
        elif kind == "write":
            if event.get("ok"):
                unsourced = event.get("unsourced") or 0
                self.print(
                    f"  [green]✓[/] report written: {event['kept']} citations kept, {event['removed']} removed"
                    + (f", [yellow]{unsourced} claims left unsourced[/]" if unsourced else "")
                )
            else:
                self.print("  [red]✗ the synthesizer wrote nothing[/]")

    def finish(self, summary: dict[str, Any]) -> None:
        usage = summary["usage"]
        self.print(
            f"[bold]{summary['status']}[/] after {summary['rounds']} rounds, "
            f"{len(summary['tool_calls'])} tool calls · tokens: {usage['prompt_tokens']} prompt "
            f"({usage['cached_tokens']} cached), {usage['completion_tokens']} completion"
        )


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA —"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


def eval_status_line(event: dict[str, Any]) -> str:
    """``done 120/200 · correct 90 (75.0%) · failed 2 · in flight 32 · 14.2 q/min · ETA 5:38``."""
    accuracy = event.get("accuracy")
    per_minute = event.get("per_minute")
    return (
        f"done {event['done']}/{event['total']} · correct {event['correct']}"
        f" ({'—' if accuracy is None else f'{accuracy:.1%}'}) · failed {event['failed']}"
        f" · in flight {event['in_flight']} · {'—' if per_minute is None else f'{per_minute:.1f}'} q/min"
        f" · {_eta(event.get('eta_s'))}"
    )


class EvalProgressView:
    """Progress of ``fathom eval run`` on stderr, fed the runner's events.

    On a terminal: a live bar with the status line, and a line for each failed question or judge
    error above it. Elsewhere (a log file, CI): the status line at most every ``every_s`` seconds,
    and those same lines. ``as_json``: every event as one JSON line instead. Use it as a context
    manager so the bar is taken down however the eval ends.
    """

    def __init__(self, console: Console, *, as_json: bool = False, every_s: float = 10.0) -> None:
        self.console = console
        self.as_json = as_json
        self.every_s = every_s
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def __enter__(self) -> EvalProgressView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def handle(self, event: dict[str, Any]) -> None:
        if self.as_json:
            import json

            self.console.file.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            self.console.file.flush()
            return
        kind = event.get("event")
        if kind == "eval_start":
            self.console.print(
                f"[bold]eval[/] {escape(event['eval'])}: {event['total']} questions of {escape(event['dataset'])}, "
                f"{event['done']} done before", highlight=False,
            )
            self._start_bar(event)
        elif kind == "eval_progress":
            if event.get("status") == "failed":
                self.console.print(f"  [red]✗[/] {escape(str(event['item']))}: {escape(_shorten(str(event.get('error')), ERROR_PREVIEW))}")
            elif event.get("verdict") == "judge_error":
                self.console.print(f"  [yellow]judge error[/] on {escape(str(event['item']))}")
            self._update(event)
        elif kind == "eval_lease_lost":
            self.console.print(f"  [yellow]lease lost[/] on {escape(str(event['item']))}: another worker took it over")

    def _start_bar(self, event: dict[str, Any]) -> None:
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[line]}"),
            console=self.console, transient=False,
        )
        self._task = self._bar.add_task(
            event["eval"], total=event["total"], completed=event["done"] + event["failed"], line=eval_status_line(event),
        )
        self._bar.start()

    def _update(self, event: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=event["done"] + event["failed"], line=eval_status_line(event))
            return
        import time

        now = time.monotonic()
        finished = event["done"] + event["failed"] >= event["total"]
        if finished or now - self._last_line >= self.every_s:
            self._last_line = now
            self.console.print(f"  {eval_status_line(event)}", highlight=False)
