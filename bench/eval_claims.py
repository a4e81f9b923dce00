"""Eval claims at scale: what one claim costs as the eval grows (SQLite, on Fathom's own loop).

A worker claims an item each time a run finishes, on the event loop that drives every run in
flight, so a claim that grows with the eval slows every question of a large one. Prints the mean
milliseconds of ``--claims`` one-item claims in evals of each size.

    .venv/bin/python bench/eval_claims.py [--sizes 200,10000,50000] [--claims 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.aio import run_own_loop  # noqa: E402
from fathom.store import open_store  # noqa: E402
from fathom.store.eval import EvalItem, EvalStore  # noqa: E402


async def claim_ms(size: int, claims: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(f"sqlite:///{tmp}/claims.db") as store:
            evals = EvalStore(store.db)
            await evals.create_or_open("bench", "bench", (EvalItem(f"q{i}", f"question {i}?", "a") for i in range(size)))
            await evals.claim("bench", "warm-up", 120, 1)  # statement caches, connection
            start = time.perf_counter()
            for _ in range(claims):
                await evals.claim("bench", "worker", 120, 1)
            return (time.perf_counter() - start) / claims * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,10000,50000")
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size:>7} items: {run_own_loop(claim_ms(size, args.claims)):6.2f} ms a claim")


if __name__ == "__main__":
    main()
