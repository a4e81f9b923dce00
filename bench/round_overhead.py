"""Per-round orchestration overhead: what a research round costs outside the model and the tools.

The real research graph (``run_question`` with the SQLite checkpointer of ``open_store`` and
``durability="sync"``) runs against the loopback fakes, served from a process of their own (as a
model server is) with no model or page latency. The fake search model searches in round 1, reads
``--reads`` new pages (~``--page-chars`` characters each) every later round, and answers when told
its budget of ``--rounds`` rounds is used up.

Round ``r`` is the cycle that starts when turn ``r``'s model request starts and ends when turn
``r + 1``'s starts: parsing turn ``r``, the graph steps, the durable checkpoints, the tool calls,
folding and budgeting, and rendering turn ``r + 1``'s prompt. Its overhead is that wall minus the
model request (``SGLangClient.generate``, HTTP included) and the tool calls (``search_urls`` /
``query_url``, their cache included), all timed by wrappers the bench puts on the run's own
clients (no package code changes). The overhead is split into checkpoint writes (``aput`` +
``aput_writes``), render (``FathomProtocol.render``) + parse (``parse_turn``), and the rest (graph
step machinery, state reducers, folding plans, budget estimates, progress events); ``encode``
is the part of the checkpoint writes spent serializing the list channels element by element
(``ListEncoder.encode``: the messages new since the previous checkpoint, plus a comparison of
the others against what was encoded), not an extra share.

Printed per ``--context-strategy`` (fold, answer): the median over ``--runs`` runs at rounds 1, 16
and 64, the spread (min-max), and the ratio to the 10 ms target at round 64.

    .venv/bin/python bench/round_overhead.py [--rounds 64] [--runs 5] [--reads 1] [--page-chars 1500]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.e2e import union  # noqa: E402
from bench.long_horizon import QUESTION, page_html, plan  # noqa: E402
from fathom.aio import run_own_loop  # noqa: E402
from tests.conftest import fake_settings  # noqa: E402
from tests.fakes.search_apis import FakeSearxng  # noqa: E402
from tests.fakes.sglang import FakeSGLang, keep_researching  # noqa: E402
from tests.fakes.web import FakeWeb  # noqa: E402

TARGET_MS = 10.0
MEASURED = (1, 16, 64)
PARTS = ("checkpoint", "encode", "render", "parse", "rest")

Span = tuple[float, float]


# ---- the fakes, in their own process -------------------------------------------------------


def serve_fakes(conn: Connection, rounds: int, reads: int, page_chars: int, context: int) -> None:
    """Serve the fakes until told to stop; send their URLs first. Between runs the parent asks
    for the model's prefix cache to be forgotten (its bookkeeping grows with every prompt)."""
    with FakeWeb() as web:
        for n in range(rounds * reads + reads):
            web.add_page(f"/p/{n}", page_html(n, page_chars, answer=n == 0))
        results = [{"title": f"Archive page {n}", "url": web.url(f"/p/{n}"), "snippet": "Bridge records."} for n in range(10)]
        calls = plan(web, reads)

        with (
            FakeSearxng(results, api_key=None) as searxng,
            FakeSGLang(context_length=context, fallback=keep_researching(calls, "14 June 1897")) as sglang,
        ):
            conn.send({"sglang": sglang.url, "searxng": searxng.url, "web": web.hostport})
            while conn.recv() == "reset":
                with sglang._lock:
                    sglang._seen.clear()
                    sglang.prompts.clear()
                    sglang.requests.clear()
                conn.send("ok")


# ---- timing --------------------------------------------------------------------------------


class Spans:
    """Start/end times of the calls the bench wraps, by kind."""

    def __init__(self) -> None:
        kinds = ("model", "tool", "checkpoint", "encode", "render", "parse")
        self.by_kind: dict[str, list[Span]] = {k: [] for k in kinds}

    def wrap_async(self, owner: Any, name: str, kind: str) -> None:
        inner = getattr(owner, name)
        spans = self.by_kind[kind]

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                spans.append((start, time.perf_counter()))

        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, kind: str) -> Callable[[], None]:
        inner = getattr(owner, name)
        spans = self.by_kind[kind]

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spans.append((start, time.perf_counter()))

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, inner)


def round_breakdown(spans: Spans) -> list[dict[str, float]]:
    """Per round (cycle from one model request's start to the next's): overhead and its parts, in ms."""
    starts = sorted(a for a, _ in spans.by_kind["model"])
    busy = spans.by_kind["model"] + spans.by_kind["tool"]
    out = []
    for lo, hi in zip(starts, starts[1:], strict=False):
        outside = (hi - lo) - union(busy, lo, hi)
        parts = {
            kind: union(spans.by_kind[kind] + busy, lo, hi) - union(busy, lo, hi)
            for kind in ("checkpoint", "render", "parse")
        }
        parts["rest"] = outside - sum(parts.values())
        parts["encode"] = union(spans.by_kind["encode"] + busy, lo, hi) - union(busy, lo, hi)  # inside checkpoint
        out.append({"overhead": outside * 1000, **{k: v * 1000 for k, v in parts.items()}})
    return out


# ---- one run -------------------------------------------------------------------------------


async def one_run(strategy: str, args: argparse.Namespace, urls: dict[str, str], db_path: Path) -> list[dict[str, float]]:
    import fathom.protocols.fathom as fathom_protocol
    from fathom.app.runs import run_question
    from fathom.app.services import build_services
    from fathom.store import open_store
    from fathom.store.checkpoints.codec import ListEncoder

    settings = fake_settings(
        SimpleNamespace(url=urls["sglang"]), SimpleNamespace(url=urls["searxng"]), SimpleNamespace(hostport=urls["web"]),
        max_rounds=args.rounds + 1,  # round `rounds` is an ordinary round; the next one is forced to answer
        context_tokens=args.context, context_strategy=strategy, evidence_max_chars=args.evidence_chars,
        max_wall_seconds=3600, db_url=f"sqlite:///{db_path}",
    )
    spans = Spans()
    restore = [
        spans.wrap_sync(fathom_protocol, "parse_turn", "parse"),
        spans.wrap_sync(ListEncoder, "encode", "encode"),
    ]
    try:
        async with open_store(settings.db_url) as store:
            saver = store.saver
            spans.wrap_async(saver, "aput", "checkpoint")
            spans.wrap_async(saver, "aput_writes", "checkpoint")
            async with build_services(settings, database=store.db) as services:
                spans.wrap_async(services.protocol.client, "generate", "model")
                spans.wrap_async(services.tools, "search_urls", "tool")
                spans.wrap_async(services.tools, "query_url", "tool")
                spans.wrap_sync(services.protocol, "render", "render")
                summary = await run_question(QUESTION, settings, run_id=f"{strategy}-{db_path.stem}",
                                             checkpointer=saver, services=services)
    finally:
        for undo in restore:
            undo()
    if summary.get("rounds", 0) < args.rounds + 1 and not summary.get("answer"):
        print(f"  warning: {strategy} run ended early: {summary.get('status')} {summary.get('error')}")
    return round_breakdown(spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=64)
    parser.add_argument("--runs", type=int, default=7, help="runs per strategy (medians and spread over them)")
    parser.add_argument("--reads", type=int, default=1, help="pages read per round")
    parser.add_argument("--page-chars", type=int, default=1500)
    parser.add_argument("--evidence-chars", type=int, default=6000)
    parser.add_argument("--context", type=int, default=131072, help="context tokens (model and settings)")
    parser.add_argument("--strategies", default="fold,answer")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    measured = [r for r in MEASURED if r <= args.rounds]

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    fakes = ctx.Process(target=serve_fakes, args=(child, args.rounds, args.reads, args.page_chars, args.context), daemon=True)
    fakes.start()
    results: dict[str, list[list[dict[str, float]]]] = {s: [] for s in strategies}
    try:
        urls = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs + 1):  # the first pass warms imports, graph compilation, caches
                for strategy in strategies:
                    parent.send("reset")
                    parent.recv()
                    rounds = run_own_loop(one_run(strategy, args, urls, Path(tmp) / f"{strategy}-{i}.db"))
                    if i:
                        results[strategy].append(rounds)
        parent.send("stop")
    finally:
        fakes.join(timeout=10)
        if fakes.is_alive():
            fakes.kill()

    print(f"{args.rounds} rounds, {args.reads} page read(s) a round (~{args.page_chars} characters), context "
          f"{args.context} tokens, SQLite, durability=sync; {args.runs} runs per strategy after a warm-up run")
    print("overhead per round in ms = round wall - model request - tool calls; median [min-max] over runs")
    header = f"{'strategy':<9}{'round':>6}{'overhead':>22}" + "".join(f"{p:>19}" for p in PARTS)
    print(header)
    for strategy in strategies:
        runs = results[strategy]
        for r in measured:
            row = [run[r - 1] for run in runs if len(run) >= r]
            if not row:
                continue
            cells = []
            for key in ("overhead", *PARTS):
                values = [x[key] for x in row]
                cells.append(f"{statistics.median(values):6.2f} [{min(values):5.2f}-{max(values):5.2f}]")
            print(f"{strategy:<9}{r:>6}{cells[0]:>22}" + "".join(f"{c:>19}" for c in cells[1:]))
        last = [run[measured[-1] - 1]["overhead"] for run in runs if len(run) >= measured[-1]]
        if last:
            med = statistics.median(last)
            print(f"{strategy:<9} round {measured[-1]}: {med:.2f} ms = {med / TARGET_MS:.2f}x the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
