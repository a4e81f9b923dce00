"""``fathom eval``: score the models on a benchmark, resumable, on one machine or many.

The evaluator is :mod:`fathom.eval`, imported inside each command: ``fathom --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fathom.cli.options import RunOptions, run_options, stderr, with_store
from fathom.errors import ConfigError

eval_app = typer.Typer(
    help="Score the models on a benchmark: run (resumable; several machines share one eval on PostgreSQL), list, show.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JUDGES = ("auto", "llm", "exact", "f1", "mcq", "numeric")


@eval_app.command("run")
@run_options
def run(
    dataset: Annotated[str, typer.Argument(help="A JSONL file (id, question, answer) or a set installed by 'fathom datasets fetch'")],
    name: Annotated[Optional[str], typer.Option("--name", help="The eval's name; the same name again resumes it [default the data set's name]")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N questions [default all]")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="A seeded random sample of N questions [default none]")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample")] = 0,
    ids: Annotated[Optional[str], typer.Option("--ids", help="Only these question ids, comma-separated [default all]")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Questions researched at once")] = 32,
    judge: Annotated[str, typer.Option("--judge", help="auto, llm, exact, f1, mcq or numeric [default auto: by data set]")] = "auto",
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="The LLM judge: openai:MODEL or an OpenAI-compatible base URL [default the query LLM]")] = None,
    judge_prompt_file: Annotated[Optional[Path], typer.Option("--judge-prompt-file", help="A grader prompt with {question}, {target} and {predicted_answer} slots [default ours]")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Research failed questions again")] = False,
    opts: RunOptions = RunOptions(),  # replaced by the options' own flags (see run_options)
) -> None:
    """Research every question of DATASET as a durable run, judge the answers and print the scores.

    Running the same command again skips judged questions, continues interrupted runs from their
    checkpoints and (with --retry-failed) retries failed ones.
    """
    opts.check()
    if judge not in JUDGES:
        raise ConfigError(f"--judge must be one of {', '.join(JUDGES)}")
    settings = opts.load_settings()
    from fathom.eval.datasets import load_dataset, select

    loaded = load_dataset(dataset)
    chosen = select(loaded.items, limit=limit, sample=sample, seed=seed, ids=ids.split(",") if ids else None)
    prompt = _read_prompt(judge_prompt_file)
    summary = asyncio.run(_run(name or loaded.name, loaded.name, chosen, settings, judge, judge_model, prompt,
                               concurrency, retry_failed, quiet=opts.quiet))
    if opts.as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        _print_scores(summary)


async def _run(name: str, dataset: str, items: list[Any], settings: Any, judge: str, judge_model: str | None,
               prompt: str | None, concurrency: int, retry_failed: bool, *, quiet: bool) -> dict[str, Any]:
    from fathom.app.services import judge_chat_client
    from fathom.eval.judges import judge_for
    from fathom.eval.runner import run_eval

    chat = judge_chat_client(settings, judge_model) if judge in ("auto", "llm") else None
    try:
        chosen = judge_for(judge, dataset=dataset, chat=chat, prompt=prompt)
        summary = await run_eval(name, dataset, items, settings, judge=chosen, concurrency=concurrency,
                                 retry_failed=retry_failed, on_event=None if quiet else _progress)
    finally:
        if chat is not None:
            await chat.aclose()
    return {**summary, **await _scores(settings.db_url, name)}


def _read_prompt(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--judge-prompt-file {path} cannot be read: {exc}") from None


def _progress(event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "eval_start":
        stderr().print(f"eval {event['eval']}: {event['total']} questions of {event['dataset']}, {event['done']} done before")
    elif kind == "eval_progress" and event.get("item") is not None:
        verdict = event.get("verdict") or event.get("status") or ""
        stderr().print(f"  {event['item']}: {verdict}  (done {event['done']}, failed {event['failed']}, in flight {event['in_flight']})")


async def _scores(db_url: str | None, name: str) -> dict[str, Any]:
    from fathom.eval.metrics import summarize
    from fathom.store import open_store
    from fathom.store.eval import EvalStore

    async with open_store(db_url) as store:
        records = await EvalStore(store.db).items(name)
    rows = [_metrics_row(record) for record in records]
    return {"metrics": summarize(rows).as_dict()}


def _metrics_row(record: Any) -> dict[str, Any]:
    metrics = dict(record.metrics or {})
    status = metrics.get("run_status") or ("failed" if record.status == "failed" else None)
    return {**metrics, "verdict": record.verdict if record.status == "done" else None, "status": status}


def _print_scores(summary: dict[str, Any]) -> None:
    m = summary["metrics"]

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    sys.stdout.write(
        f"eval {summary['eval']}: accuracy {pct(m['accuracy'])} of all {summary['total']} questions, "
        f"{pct(m['accuracy_completed'])} of completed; correct {m['correct']}, incorrect {m['incorrect']}, "
        f"not attempted {m['not_attempted']}, judge errors {m['judge_error']}, failed {summary['failed']}, "
        f"pending {summary['pending'] + summary['claimed']}\n"
    )


@eval_app.command("list")
def list_evals(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Run database [env FATHOM_DB_URL; default a SQLite file in the user data dir]")] = None,
) -> None:
    """Every eval in the run database, newest first, with its counts."""

    async def work(store: Any) -> list[Any]:
        from fathom.store.eval import EvalStore

        return await EvalStore(store.db).list_evals()

    infos = with_store(work)(db)
    if not infos:
        stderr().print("no evals yet (start one with 'fathom eval run DATASET')")
    for info in infos:
        if as_json:
            sys.stdout.write(json.dumps({"name": info.name, "dataset": info.dataset, "total": info.total,
                                         **info.counts, "created_at": info.created_at.isoformat()}) + "\n")
        else:
            counts = ", ".join(f"{k} {v}" for k, v in info.counts.items() if v)
            sys.stdout.write(f"{info.name}\t{info.dataset}\t{info.total} questions\t{counts}\n")


@eval_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The eval (see 'fathom eval list')")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    db: Annotated[Optional[str], typer.Option("--db", help="Run database [env FATHOM_DB_URL; default a SQLite file in the user data dir]")] = None,
) -> None:
    """An eval's scores: accuracy over all and completed questions, verdicts, failures, effort."""

    async def work(store: Any) -> dict[str, Any]:
        from fathom.eval.metrics import summarize
        from fathom.eval.runner import eval_summary
        from fathom.store.eval import EvalStore

        evals = EvalStore(store.db)
        records = await evals.items(name)
        if not records:
            raise ConfigError(f"no eval {name!r} (see 'fathom eval list')")
        return {**await eval_summary(evals, name), "metrics": summarize(map(_metrics_row, records)).as_dict()}

    summary = with_store(work)(db)
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        _print_scores(summary)
