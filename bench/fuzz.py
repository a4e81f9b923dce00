"""The long fuzz run (issue 15): 10,000 generated cases a target, megabyte-long input included.

The targets and their properties are the fuzz tests' own (tests/unit/**/test_fuzz_*.py, each a
``check_*`` function); the strategies are ``tests/support/fuzz.py`` with ``big=True``. A case
"fails" when its check raises anything: an exception of the code under test or a broken property.
Nothing stops at a failure (no shrinking): every case runs and is counted. The cases are drawn by
hypothesis runs of :data:`CHUNK` cases, each seeded from ``--seed`` (random by default, printed on
stderr: the same seed draws the same cases).

Per target it prints the cases run, the failures (by kind, with the smallest failing input's
start), the worst and median time of one case, and the peak memory: the process' resident-set
high-water mark when the target ends (``ru_maxrss``, cumulative over the targets run before it).

    .venv/bin/python bench/fuzz.py                       # every target, 10,000 cases each
    .venv/bin/python bench/fuzz.py --cases 500 parser_fathom citations
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.tools.media import MediaKind  # noqa: E402
from tests.support import fuzz  # noqa: E402
from tests.unit.cli import test_fuzz_cli as cli  # noqa: E402
from tests.unit.nodes.test_fuzz_citations import check_report  # noqa: E402
from tests.unit.protocols.test_fuzz_parsers import CALL_BODIES, check_chat, check_fathom  # noqa: E402
from tests.unit.tools.test_fuzz_extract import check_extract  # noqa: E402

Target = tuple[st.SearchStrategy[Any], Callable[[Any], Any]]


def targets(root: Path) -> dict[str, Target]:
    chat_calls = st.lists(st.tuples(st.sampled_from(["search_urls", "query_url", "nope"]), CALL_BODIES | fuzz.TEXT),
                          max_size=3)
    return {
        "parser_fathom": (st.tuples(fuzz.completions(big=True), st.sampled_from(["stop", "length"]), st.booleans()),
                          lambda case: check_fathom(*case)),
        "parser_chat": (st.tuples(fuzz.completions(big=True), chat_calls, st.booleans()), lambda case: check_chat(*case)),
        "citations": (st.tuples(fuzz.reports(big=True), fuzz.TEXT), lambda case: check_report(*case)),
        "extract_html": (fuzz.html_documents(big=True),
                         lambda markup: check_extract(MediaKind.HTML, markup.encode("utf-8", "replace"))),
        "extract_pdf": (fuzz.pdf_documents(big=True), lambda data: check_extract(MediaKind.PDF, data)),
        "extract_office": (fuzz.office_documents(big=True), lambda data: check_extract(MediaKind.OFFICE, data)),
        "cli": (cli.argv_vectors(root), cli.check_cli),
    }


def size_of(case: Any) -> int:
    if isinstance(case, (str, bytes)):
        return len(case)
    if isinstance(case, (tuple, list)):
        return sum(size_of(part) for part in case)
    return 0


# Cases per hypothesis run. A run keeps every value it drew until it ends (~3 MB a case of
# megabyte input): 10,000 HTML cases in one run held 22 GB and were killed for memory.
CHUNK = 250


def run_target(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], Any], cases: int,
               seed: int = 0) -> dict[str, Any]:
    times: list[float] = []
    failures: Counter[str] = Counter()
    smallest: dict[str, tuple[int, str]] = {}
    largest = 0

    def one(case: Any) -> None:
        nonlocal largest
        largest = max(largest, size_of(case))
        started = time.perf_counter()
        try:
            check(case)
        except Exception as exc:  # counted, never raised: every case runs
            kind = f"{type(exc).__name__}: {' '.join(str(exc).split())[:90]}"
            failures[kind] += 1
            if kind not in smallest or size_of(case) < smallest[kind][0]:
                smallest[kind] = (size_of(case), repr(case)[:160])
        finally:
            times.append(time.perf_counter() - started)
            if len(times) % 1000 == 0:  # a long run shows it is moving (stderr: the table stays clean)
                print(f"{name}: {len(times)} cases, {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)

    began = time.perf_counter()
    seeds = random.Random(seed)
    for start in range(0, cases, CHUNK):
        run = settings(max_examples=min(CHUNK, cases - start), phases=[Phase.generate], database=None, deadline=None,
                       suppress_health_check=list(HealthCheck))(given(strategy)(one))
        hypothesis.seed(seeds.getrandbits(64))(run)()
    return {
        "name": name, "cases": len(times), "failures": failures, "smallest": smallest, "largest_input": largest,
        "max_s": max(times, default=0.0), "median_s": statistics.median(times) if times else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


@contextlib.contextmanager
def sandbox() -> Any:
    """What the CLI target needs (see tests/unit/cli/test_fuzz_cli.py): its own dirs, a temporary
    database, servers that refuse at once on loopback, no keys, a scratch working directory."""
    saved, cwd = dict(os.environ), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="fathom-fuzz-") as tmp:
        root = Path(tmp)
        for key in [k for k in os.environ if k.startswith("FATHOM_") or k in cli.SECRET_ENV_VARS.values()]:
            del os.environ[key]
        os.environ.update(cli.sandbox(root))
        for folder in ("data", "config", "state", "cache", "home", "tmp", "cwd"):
            (root / folder).mkdir()
        (root / "junk.db").write_bytes(b"not a database\x00" * 10)
        os.chdir(root / "cwd")
        try:
            yield root
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run [default all]")
    parser.add_argument("--cases", type=int, default=10_000, help="generated cases per target")
    parser.add_argument("--seed", type=int, default=None, help="seed of the runs [default random, printed]")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    print(f"seed {seed}", file=sys.stderr, flush=True)
    with sandbox() as root:
        chosen = targets(root)
        unknown = set(args.targets) - set(chosen)
        if unknown:
            parser.error(f"unknown target(s) {sorted(unknown)}; choose from {sorted(chosen)}")
        print(f"{'target':<15} {'cases':>6} {'failed':>6} {'max s':>7} {'median s':>9} {'largest in':>11} {'peak RSS MB':>12}")
        failed = 0
        for name in args.targets or list(chosen):
            result = run_target(name, *chosen[name], args.cases, seed)
            count = sum(result["failures"].values())
            failed += count
            print(f"{name:<15} {result['cases']:>6} {count:>6} {result['max_s']:>7.2f} {result['median_s']:>9.4f} "
                  f"{result['largest_input']:>11,} {result['peak_rss_mb']:>12.0f}", flush=True)
            for kind, n in result["failures"].most_common():
                print(f"    {n} x {kind}\n      smallest: {result['smallest'][kind][1]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
