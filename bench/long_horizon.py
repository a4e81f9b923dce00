"""Long horizon: 64 rounds of research inside the search model's 40,960-token context.

The fake SGLang server plays a search model that never stops researching on its own: round 1
searches, every later round reads ``--reads`` new pages (each ~``--page-chars`` characters of
text), and only when told that its budget is used up does it answer. The answer's page is the
first read of round 2. The same run goes once with ``--context-strategy fold`` and once with
``answer`` (the behaviour before folding), side by side, and prints for each:

- rounds: the round the run reached before any answer was forced for lack of context (the last
  round, forced by the round limit, counts as reached);
- peak prompt: the largest prompt sent, in the server's tokens (the fake counts 4 characters a
  token), against the context;
- reuse/ideal: prompt tokens the server found in its prefix cache, over what an append-only
  transcript would have let it reuse (the whole previous prompt and completion, every round);
- folds: how many folds the run took, and tool results folded;
- answer kept: whether the round-2 evidence (the answer) is in the final prompt.

    .venv/bin/python bench/long_horizon.py [--rounds 64] [--reads 3] [--page-chars 1500] [--context 40960]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.aio import run_own_loop  # noqa: E402
from fathom.app.runs import run_question  # noqa: E402
from fathom.app.services import build_services  # noqa: E402
from tests.conftest import fake_settings  # noqa: E402
from tests.fakes.search_apis import FakeSearxng  # noqa: E402
from tests.fakes.sglang import FakeSGLang, count_tokens, keep_researching  # noqa: E402
from tests.fakes.web import FakeWeb  # noqa: E402

QUESTION = "When did the Kestrel Bridge open to traffic?"
ANSWER_LINE = "The Kestrel Bridge opened to traffic on 14 June 1897, after four years of building."
TOPICS = ["masonry", "tolls", "floods", "trams", "repairs", "lighting", "painting", "surveys", "ferries", "bylaws"]


def page_html(n: int, chars: int, *, answer: bool) -> str:
    """Page ``n``: ~``chars`` characters of paragraphs about one side topic (and the answer line)."""
    topic = TOPICS[n % len(TOPICS)]
    sentences = [
        f"Record {n}.{i} on the {topic} of the river crossing notes detail number {n * 31 + i} for the district archive."
        for i in range(max(1, chars // 95))
    ]
    paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    if answer:
        paragraphs.insert(len(paragraphs) // 2, ANSWER_LINE)
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<html><head><title>Archive page {n}: {topic}</title></head><body><h1>{topic.title()}</h1>{body}</body></html>"


def plan(web: FakeWeb, reads: int):
    """The calls of round ``r``: a search first, then ``reads`` new pages a round."""

    def calls(round_no: int) -> list[dict[str, Any]]:
        if round_no == 1:
            return [{"name": "search_urls", "arguments": {"query": "Kestrel Bridge opening"}}]
        first = (round_no - 2) * reads
        return [
            {"name": "query_url", "arguments": {
                "url": web.url(f"/p/{first + k}"),
                "goal": "When did the Kestrel Bridge open?" if first + k == 0 else f"Kestrel Bridge {TOPICS[(first + k) % 10]}",
            }}
            for k in range(reads)
        ]

    return calls


async def one_run(strategy: str, args: argparse.Namespace, db_dir: Path) -> dict[str, Any]:
    with FakeWeb() as web:
        for n in range(args.rounds * args.reads):
            web.add_page(f"/p/{n}", page_html(n, args.page_chars, answer=n == 0))
        results = [{"title": f"Archive page {n}", "url": web.url(f"/p/{n}"), "snippet": "Bridge records."} for n in range(10)]
        with FakeSearxng(results, api_key=None) as searxng, FakeSGLang(context_length=args.context) as sglang:
            model = keep_researching(plan(web, args.reads), "14 June 1897")
            sglang.fallback = model
            settings = fake_settings(
                sglang, searxng, web,
                max_rounds=args.rounds, context_tokens=args.context, context_strategy=strategy,
                evidence_max_chars=args.evidence_chars, max_wall_seconds=3600,
                db_url=f"sqlite:///{db_dir / f'{strategy}.db'}",
            )
            started = time.perf_counter()
            async with build_services(settings) as services:
                summary = await run_question(QUESTION, settings, run_id=strategy, services=services)
            wall = time.perf_counter() - started
            prompts = list(sglang.prompts)
    forced_by_context = next((i for i, p in enumerate(prompts) if "the context window of" in _latest_user_turn(p)), None)
    reached = forced_by_context if forced_by_context is not None else len(prompts)
    ideal = sum(count_tokens(prompts[i - 1] + model(prompts[i - 1])) for i in range(1, len(prompts)))
    return {
        "strategy": strategy,
        "rounds": reached,
        "peak": max(count_tokens(p) for p in prompts),
        "reuse": summary["usage"]["cached_tokens"] / ideal if ideal else 0.0,
        "folds": len(summary.get("folds") or []),
        "folded": sum(len(f["message_ids"]) for f in summary.get("folds") or []),
        "kept": ANSWER_LINE in prompts[-1],
        "answer": summary["answer"],
        "wall": wall,
    }


def _latest_user_turn(prompt: str) -> str:
    return prompt[prompt.rfind("<|im_start|>user"):]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=64)
    parser.add_argument("--reads", type=int, default=3)
    parser.add_argument("--page-chars", type=int, default=1500)
    parser.add_argument("--evidence-chars", type=int, default=6000)
    parser.add_argument("--context", type=int, default=40960)
    args = parser.parse_args()
    print(f"{args.rounds} rounds, {args.reads} page reads a round (~{args.page_chars} characters each), "
          f"context {args.context} tokens")
    print(f"{'strategy':<10}{'rounds':>10}{'peak prompt':>18}{'reuse/ideal':>13}{'folds':>7}{'folded':>8}"
          f"{'answer kept':>13}  answer")
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("fold", "answer"):
            r = await one_run(strategy, args, Path(tmp))
            print(f"{r['strategy']:<10}{r['rounds']:>5}/{args.rounds:<4}{r['peak']:>9,}/{args.context:<8,}"
                  f"{r['reuse']:>13.3f}{r['folds']:>7}{r['folded']:>8}{'yes' if r['kept'] else 'no':>13}  "
                  f"{r['answer']} ({r['wall']:.0f} s)")


if __name__ == "__main__":
    run_own_loop(main())
