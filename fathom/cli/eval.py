"""``fathom eval``: score the models on a benchmark, resumable, on one machine or many.

The evaluator is :mod:`fathom.eval`, imported inside each command: ``fathom --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fathom.aio import run_own_loop
from fathom.cli.options import DbUrl, RunOptions, load_settings, run_options, stderr, with_store, write_output
from fathom.errors import ConfigError, one_line
from fathom.startup import collector_paused

eval_app = typer.Typer(
    help="Score the models on a benchmark: run (resumable; several machines share one eval on PostgreSQL), list, show, "
    "export (JSONL), report (Markdown or HTML with plots), compare (two evals, McNemar), rejudge (another judge, "
    "no new research), delete.",
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
    checkpoints and (with --retry-failed) retries failed ones. With --json the scores are one JSON
    object on stdout and progress is JSON lines on stderr.
    """
    opts.check()
    if judge not in JUDGES:
        raise ConfigError(f"--judge must be one of {', '.join(JUDGES)}")
    settings = opts.load_settings()
    from fathom.eval.datasets import load_dataset, select

    loaded = load_dataset(dataset)
    chosen = select(loaded.items, limit=limit, sample=sample, seed=seed, ids=ids.split(",") if ids else None)
    prompt = _read_prompt(judge_prompt_file)

    from fathom.cli.progress import EvalProgressView

    with EvalProgressView(stderr(), as_json=opts.as_json) as view:
        summary = run_own_loop(_run(name or loaded.name, loaded.name, chosen, settings, judge, judge_model, prompt,
                                   concurrency, retry_failed, on_event=None if opts.quiet else view.handle))
    if opts.as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        _print_scores(summary)


async def _run(name: str, dataset: str, items: list[Any], settings: Any, judge: str, judge_model: str | None,
               prompt: str | None, concurrency: int, retry_failed: bool, *,
               on_event: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    with collector_paused(freeze=True):  # the research stack: see fathom/startup.py
        from fathom.eval.judging import eval_judge
        from fathom.eval.runner import run_eval

    async with eval_judge(settings, judge, dataset=dataset, judge_model=judge_model, prompt=prompt) as chosen:
        summary = await run_eval(name, dataset, items, settings, judge=chosen, concurrency=concurrency,
                                 retry_failed=retry_failed, on_event=on_event)
    return {**summary, **await _scores(settings.db_url, name)}


def _read_prompt(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--judge-prompt-file {path} cannot be read: {exc}") from None


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
    from fathom.eval.report import percent as pct

    m = summary["metrics"]

    def num(value: float | None, unit: str = "") -> str:
        return "—" if value is None else f"{value:.1f}{unit}"

    causes = ", ".join(f"{cause} {n}" for cause, n in m["failures_by_cause"].items()) or "none"
    sys.stdout.write(
        f"eval {summary['eval']}: accuracy {pct(m['accuracy'])} of all {summary['total']} questions, "
        f"{pct(m['accuracy_completed'])} of completed; correct {m['correct']}, incorrect {m['incorrect']}, "
        f"not attempted {m['not_attempted']}, judge errors {m['judge_error']}, failed {summary['failed']}, "
        f"pending {summary['pending'] + summary['claimed']}\n"
        f"  failures by cause: {causes}\n"
        f"  rounds mean {num(m['rounds_mean'])}, median {num(m['rounds_median'])}; tool calls mean "
        f"{num(m['tool_calls_mean'])}, median {num(m['tool_calls_median'])}; tokens {m['prompt_tokens']:,} prompt "
        f"({pct(m['cached_fraction'])} cached), {m['completion_tokens']:,} completion\n"
        f"  wall per question p50 {num(m['wall_p50_s'], ' s')}, p95 {num(m['wall_p95_s'], ' s')}\n"
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


async def _records(store: Any, name: str) -> list[Any]:
    """Eval ``name``'s items, or a one-line error when there is no such eval."""
    from fathom.store.eval import EvalStore

    records = await EvalStore(store.db).items(name)
    if not records:
        raise ConfigError(f"no eval {name!r} (see 'fathom eval list')")
    return records


def _export_row(record: Any) -> dict[str, Any]:
    metrics = record.metrics or {}
    prompt_tokens = metrics.get("prompt_tokens")
    cached_tokens = metrics.get("cached_tokens")
    cached_fraction = (cached_tokens / prompt_tokens
                       if isinstance(prompt_tokens, int) and prompt_tokens and isinstance(cached_tokens, int) else None)
    return {
        "id": record.id,
        "question": record.question,
        "gold": record.gold,
        "answer": record.answer,
        "verdict": record.verdict if record.status == "done" else None,
        "reason": record.reason,
        "judge": record.judge,
        "status": record.status,
        "run_status": metrics.get("run_status"),
        "error": record.error,
        "rounds": metrics.get("rounds"),
        "tool_calls": metrics.get("tool_calls"),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": metrics.get("completion_tokens"),
        "cached_tokens": cached_tokens,
        "cached_fraction": cached_fraction,
        "wall_s": metrics.get("wall_s"),
        "run_id": record.run_id,
    }


@eval_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="The eval (see 'fathom eval list')")],
    out: Annotated[Optional[Path], typer.Option("--out", help="JSONL file to write [default stdout]")] = None,
    db: DbUrl = None,
) -> None:
    """Every item of eval NAME as JSON lines: question, gold, answer, verdict, judge, status, effort, run id."""

    async def work(store: Any) -> list[Any]:
        return await _records(store, name)

    records = with_store(work)(db)
    text = "".join(json.dumps(_export_row(r), ensure_ascii=False) + "\n" for r in records)
    if write_output(text, out):
        stderr().print(f"wrote {len(records)} items of eval {name} to {out}")


@eval_app.command("compare")
def compare_evals(
    a: Annotated[str, typer.Argument(help="Eval A")],
    b: Annotated[str, typer.Argument(help="Eval B")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    db: DbUrl = None,
) -> None:
    """Compare evals A and B question by question on the ids both have: wins (only A correct),
    losses (only B correct), ties, and the exact McNemar p-value."""

    async def work(store: Any) -> tuple[list[Any], list[Any]]:
        return await _records(store, a), await _records(store, b)

    from fathom.eval.metrics import compare

    records_a, records_b = with_store(work)(db)

    def correct(records: list[Any]) -> dict[str, bool]:
        return {r.id: r.status == "done" and r.verdict == "correct" for r in records}

    result = {"a": a, "b": b, **compare(correct(records_a), correct(records_b)).as_dict()}
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(
            f"{a} vs {b} on {result['shared']} shared questions: wins {result['wins']}, losses {result['losses']}, "
            f"ties {result['ties']}; McNemar p = {result['p_value']:.4g}; only in {a} {result['only_a']}, "
            f"only in {b} {result['only_b']}\n"
        )


@eval_app.command("rejudge")
def rejudge(
    name: Annotated[str, typer.Argument(help="The eval (see 'fathom eval list')")],
    judge: Annotated[str, typer.Option("--judge", help="auto, llm, exact, f1, mcq or numeric")],
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="The LLM judge: openai:MODEL or an OpenAI-compatible base URL [default the query LLM]")] = None,
    judge_prompt_file: Annotated[Optional[Path], typer.Option("--judge-prompt-file", help="A grader prompt with {question}, {target} and {predicted_answer} slots [default ours]")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings [default none]")] = None,
    db: DbUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
) -> None:
    """Judge every done item's stored answer of eval NAME again with another judge and keep the new
    verdicts; nothing is researched again."""
    if judge not in JUDGES:
        raise ConfigError(f"--judge must be one of {', '.join(JUDGES)}")
    settings = load_settings({"db_url": db}, config)
    prompt = _read_prompt(judge_prompt_file)

    summary = run_own_loop(_rejudge(name, settings, judge, judge_model, prompt))
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        _print_scores(summary)
        changed = summary["rejudged"]
        sys.stdout.write(f"rejudged {changed['items']} answers with {changed['judge']}: {changed['changed']} verdicts changed\n")


async def _rejudge(name: str, settings: Any, judge: str, judge_model: str | None, prompt: str | None) -> dict[str, Any]:
    import asyncio

    from fathom.eval.judging import eval_judge
    from fathom.eval.metrics import summarize
    from fathom.eval.runner import eval_summary
    from fathom.store import open_store
    from fathom.store.eval import EvalStore

    async with open_store(settings.db_url) as store:
        evals = EvalStore(store.db)
        info = await evals.get(name)
        if info is None:
            raise ConfigError(f"no eval {name!r} (see 'fathom eval list')")
        counts = {"items": 0, "changed": 0}
        async with eval_judge(settings, judge, dataset=info.dataset, judge_model=judge_model, prompt=prompt,
                              database=store.db) as chosen:
            graders = asyncio.Semaphore(16)  # an LLM judge's requests overlap; each verdict is kept at once

            async def rejudge_one(record: Any) -> None:
                async with graders:
                    try:
                        judgement = await chosen(record.question, record.gold, record.answer)
                        verdict, reason, by = judgement.verdict, judgement.reason, judgement.judge or chosen.name
                    except Exception as exc:  # a judge that breaks is the judge's error, as in run
                        verdict, reason, by = "judge_error", one_line(exc) or type(exc).__name__, chosen.name
                if await evals.set_verdict(name, record.id, verdict=verdict, reason=reason, judge=by):
                    counts["items"] += 1
                    counts["changed"] += verdict != record.verdict

            await asyncio.gather(*(rejudge_one(record) for record in await evals.items(name, "done")))
        records = await evals.items(name)
        return {**await eval_summary(evals, name), "metrics": summarize(map(_metrics_row, records)).as_dict(),
                "rejudged": {**counts, "judge": chosen.name}}


@eval_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The eval (see 'fathom eval list')")],
    db: DbUrl = None,
) -> None:
    """Delete eval NAME: its questions, answers and verdicts, and its research runs with their checkpoints."""

    async def work(store: Any) -> tuple[int, int]:
        from fathom.store.eval import EvalStore

        evals = EvalStore(store.db)
        records = await evals.items(name)
        if await evals.get(name) is None:
            raise ConfigError(f"no eval {name!r} (see 'fathom eval list')")
        runs = sum(1 for r in records if r.run_id)
        await evals.delete(name)
        return len(records), runs

    questions, runs = with_store(work)(db)
    sys.stdout.write(f"deleted eval {name}: {questions} questions and {runs} research runs\n")


REPORT_FORMATS = ("md", "html")


@eval_app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="The eval (see 'fathom eval list')")],
    fmt: Annotated[str, typer.Option("--format", help="md (Markdown; plots as PNG files beside --out) or html (one standalone page)")] = "md",
    out: Annotated[Optional[Path], typer.Option("--out", help="File to write [default stdout]")] = None,
    db: DbUrl = None,
) -> None:
    """Eval NAME's report: accuracy over all and completed questions, per data set and kind, outcomes,
    failures by cause, effort, throughput, and plots (outcomes per data set and kind, rounds histogram,
    latency CDF, accuracy by tool calls); HTML embeds everything and loads nothing."""
    if fmt not in REPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")

    async def work(store: Any) -> tuple[Any, list[Any], list[Any]]:
        from fathom.store.eval import EvalStore

        records = await _records(store, name)
        info = await EvalStore(store.db).get(name)
        if info is None:  # deleted in between
            raise ConfigError(f"no eval {name!r} (see 'fathom eval list')")
        ids = {r.run_id for r in records if r.run_id}
        # one query for all runs, filtered here: a get per question costs ~4 ms each on SQLite
        runs = [run for run in await store.runs.list(limit=2**31 - 1) if run.run_id in ids] if ids else []
        return info, records, runs

    from fathom.eval import plots
    from fathom.eval import report as reports
    from fathom.eval.metrics import summarize

    info, records, runs = with_store(work)(db)
    built = reports.build_report(info, records, summarize(map(_metrics_row, records)),
                                 elapsed_s=reports.eval_elapsed_s(runs))
    if fmt == "html":
        text = reports.render_html(built, plots.render_plots(built))
    elif out is None:
        text = reports.render_markdown(built)
    else:
        text = reports.render_markdown(built, plots.write_plots(plots.render_plots(built),
                                                                  out.with_name(f"{out.stem}_files")))
    if write_output(text, out):
        stderr().print(f"wrote the {fmt} report of eval {name} to {out}")
