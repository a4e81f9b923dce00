"""Eval throughput: N questions at concurrency C against the fake model with a fixed per-turn latency.

Every question takes two model turns (a ``search_urls`` call, then a boxed answer), each held
``--delay`` seconds by the fake SGLang server; search and web are the loopback fakes of the test
suite (its limiter lifted to --concurrency searches at once and --search-rate a second: SearXNG's
default of 5 a second alone would take 40 s for 200 questions), and runs are recorded in a
fresh SQLite database. The ideal wall time is the summed per-question model + tool time
divided by the concurrency, that time as the fakes served it (a turn held 1 s takes the fake
server a little longer: parsing, answering); the ideal from the configured hold alone is
printed beside it. Prints wall / ideal (target <= 1.25), the floor that whole
waves of equal questions set (200 questions at 32 are 7 waves, the last one part full: 1.12 x
ideal before any overhead), start-up, each question's
wall against its model time, CPU seconds and peak RSS per question. The fakes run in a process of
their own (as a model server does), so CPU and RSS are the eval's alone.

    .venv/bin/python bench/eval_throughput.py [--questions 200] [--concurrency 32] [--delay 1.0] [--search-rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.aio import run_own_loop  # noqa: E402
from fathom.eval.judges import judge_for  # noqa: E402
from fathom.eval.metrics import percentile  # noqa: E402
from fathom.eval.runner import run_eval  # noqa: E402
from fathom.store import open_store  # noqa: E402
from fathom.store.eval import EvalItem, EvalStore  # noqa: E402
from tests.conftest import call, fake_settings  # noqa: E402
from tests.fakes.sglang import Reply  # noqa: E402
from tests.fakes.timing import Interval, TimedModel, TimedSearxng, served_seconds  # noqa: E402
from tests.fakes.web import FakeWeb  # noqa: E402

_QUESTION = re.compile(r"Which token is number (\d+), (\w+)\?")
TURNS = 2


def model(delay_s: float):
    def answer(prompt: str) -> Reply:
        number, token = _QUESTION.search(prompt).groups()  # type: ignore[union-attr]
        if "<tool_response>" not in prompt:
            return Reply("Search first.</think>\n\n" + call("search_urls", query=f"token {number}"), delay_s=delay_s)
        return Reply(f"Found it.</think>\n\nThe token is \\boxed{{{token}}}.", delay_s=delay_s)

    return answer


def serve_fakes(conn: Connection, delay_s: float) -> None:
    """The loopback fakes, in a process of their own (as a model server is): send their URLs,
    serve until told to stop, send the number of model requests and the intervals served."""
    sink: list[Interval] = []
    lock = threading.Lock()
    with (
        FakeWeb() as web,
        TimedSearxng(sink, lock, [{"title": "Tokens", "url": web.url("/article"), "snippet": "A token."}],
                     api_key=None) as searxng,
        TimedModel(sink, lock, fallback=model(delay_s)) as sglang,
    ):
        conn.send({"sglang": sglang.url, "searxng": searxng.url, "web": web.hostport})
        conn.recv()
        with lock:
            conn.send((len(sglang.prompts), list(sink)))


async def question_walls(settings: Any) -> list[float]:
    """Each question's wall seconds as the eval recorded them."""
    async with open_store(settings.db_url) as store:
        return [float(r.metrics["wall_s"]) for r in await EvalStore(store.db).items("bench") if r.metrics]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per model turn")
    parser.add_argument(
        "--search-rate",
        type=float,
        default=1000.0,
        help="searches started per second (SearXNG's own default limit is 5/s)",
    )
    args = parser.parse_args()

    items = [EvalItem(f"q{i}", f"Which token is number {i}, t{i}?", f"t{i}") for i in range(args.questions)]
    parent, child = multiprocessing.get_context("spawn").Pipe()
    fakes = multiprocessing.get_context("spawn").Process(target=serve_fakes, args=(child, args.delay), daemon=True)
    fakes.start()
    try:
        urls = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            settings = fake_settings(
                SimpleNamespace(url=urls["sglang"]),
                SimpleNamespace(url=urls["searxng"]),
                SimpleNamespace(hostport=urls["web"]),
                db_url=f"sqlite:///{tmp}/eval.db",
                search_concurrency=args.concurrency,
                search_rate_per_s=args.search_rate,
            )
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu_before = usage.ru_utime + usage.ru_stime
            marks: dict[str, float] = {}

            loops: set[str] = set()

            def mark(event: dict[str, Any]) -> None:
                marks.setdefault(event["event"], time.perf_counter())
                loops.add(type(asyncio.get_running_loop()).__module__.split(".")[0])  # uvloop or asyncio

            start = time.perf_counter()
            summary = run_own_loop(  # as `fathom eval run` does
                run_eval("bench", "bench", items, settings, judge=judge_for("exact"), concurrency=args.concurrency,
                         on_event=mark)
            )
            wall = time.perf_counter() - start
            usage = resource.getrusage(resource.RUSAGE_SELF)
            walls = asyncio.run(question_walls(settings))
        parent.send("stop")
        model_requests, intervals = parent.recv()
    finally:
        fakes.join(timeout=10)
        if fakes.is_alive():
            fakes.kill()

    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    served = served_seconds(intervals)
    nominal = args.questions * TURNS * args.delay / args.concurrency
    ideal = (served.get("model", 0.0) + served.get("search", 0.0)) / args.concurrency
    n = args.questions
    per_question = ideal * args.concurrency / n  # served model + search time, a question's mean
    print(
        f"questions {n}, concurrency {args.concurrency}, {args.delay:.2f} s per model turn, "
        f"{model_requests} model requests; done {summary['done']}, correct {summary['verdicts']['correct']}; "
        f"event loop {', '.join(sorted(loops))}"
    )
    print(f"wall {wall:.1f} s, ideal {ideal:.1f} s, wall / ideal {wall / ideal:.2f} (target <= 1.25)")
    print(f"  ideal = served model {served.get('model', 0.0):.1f} s + search {served.get('search', 0.0):.1f} s "
          f"over {args.concurrency}; from the configured hold alone {nominal:.1f} s: wall / that {wall / nominal:.2f}")
    # Equal questions start and end together: the last of ceil(N / C) waves runs part full.
    waves = -(-n // args.concurrency)
    floor = waves * per_question
    print(f"whole waves: {waves} waves of up to {args.concurrency} take at least {floor:.1f} s = {floor / ideal:.2f} x ideal "
          f"with no overhead at all; wall from the first claim {wall - (marks['eval_start'] - start):.1f} s "
          f"= {(wall - (marks['eval_start'] - start)) / ideal:.2f} x ideal")
    print(
        f"start-up {marks['eval_start'] - start:.2f} s (imports, database, dataset); per question wall "
        f"p50 {percentile(walls, 50):.2f} s, p95 {percentile(walls, 95):.2f} s, mean {statistics.fmean(walls):.2f} s "
        f"against {per_question:.2f} s served to it (+{statistics.fmean(walls) - per_question:.2f} s each)"
    )
    print(f"CPU {cpu:.1f} s = {cpu / n * 1000:.0f} ms per question")
    print(
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB (+{(usage.ru_maxrss - rss_before) / 1024:.0f} MiB during "
        f"the eval = {(usage.ru_maxrss - rss_before) / n:.0f} KiB per question)"
    )


if __name__ == "__main__":
    main()
