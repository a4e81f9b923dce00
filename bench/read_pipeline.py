"""The read pipeline against trafilatura, side by side, and answer-passage recall. Prints, asserts nothing.

For each generated page (bench/read_fixtures.py: 24 pages of 5-500 KB in full site chrome) it times
our HTML -> text extraction plus the ranking of passages for the page's first goal (what
``query_url`` does without a query LLM) and ``trafilatura.extract`` on the same HTML, interleaved,
``--reps`` times each; it prints the median per page and the ratio ours / trafilatura.

Recall, over every (page, goal, answer) case: the share of answers present in our extracted text,
in the extractive evidence the model would read (``--budget`` characters, as ``query_url``), and
in trafilatura's text. Cases on API references, glossaries, long tables, lead-in lists and source
listings also name what the answer belongs to (a signature, a term, a header row, a lead-in):
"evidence with names" counts an answer only when its name is in the evidence too (target >= 0.98).

    .venv/bin/python bench/read_pipeline.py [--reps 7] [--budget 6000] [--seed 7] [--show-misses]

trafilatura is an optional dependency: pip install 'fathom[bench]'.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.read_fixtures import Fixture, fixtures  # noqa: E402
from fathom.tools.evidence import EvidenceExtractor, select_passages  # noqa: E402
from fathom.tools.extract import Document, extract  # noqa: E402
from fathom.tools.fetch import Page  # noqa: E402
from fathom.tools.media import MediaKind  # noqa: E402


def as_page(fx: Fixture) -> Page:
    url = f"https://bench.example/{fx.name}"
    return Page(url=url, final_url=url, status=200, content_type="text/html; charset=utf-8",
                kind=MediaKind.HTML, body=fx.html.encode(), charset="utf-8")


def ours(fx: Fixture, budget: int) -> Callable[[], object]:
    page = as_page(fx)
    goal = fx.cases[0].goal
    return lambda: select_passages(extract(page), goal, budget)


def theirs(fx: Fixture) -> Callable[[], object]:
    import trafilatura

    return lambda: trafilatura.extract(fx.html)


def median_seconds(fns: list[Callable[[], object]], reps: int) -> list[float]:
    """Median time of each function, the functions interleaved so drift hits both alike."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:  # warm up: imports, regex compilation, lxml's parser set-up
        fn()
    for _ in range(reps):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--budget", type=int, default=6000, help="evidence characters, as evidence_max_chars")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    try:
        import trafilatura
    except ImportError:
        sys.exit("trafilatura is not installed: pip install 'fathom[bench]'")

    pages = fixtures(args.seed)
    print(f"read pipeline vs trafilatura {trafilatura.__version__}: {len(pages)} pages, "
          f"{sum(len(p.cases) for p in pages)} cases, median of {args.reps} runs each\n")
    print(f"{'page':<24} {'KB':>6} {'ours ms':>9} {'traf ms':>9} {'ratio':>6}")
    ratios, total_ours, total_theirs = [], 0.0, 0.0
    for fx in pages:
        mine, other = median_seconds([ours(fx, args.budget), theirs(fx)], args.reps)
        ratios.append(mine / other)
        total_ours, total_theirs = total_ours + mine, total_theirs + other
        print(f"{fx.name:<24} {len(fx.html.encode()) / 1000:>6.0f} {mine * 1000:>9.2f} {other * 1000:>9.2f} "
              f"{mine / other:>6.2f}")
    print(f"\nmedian per-page ratio ours/trafilatura: {statistics.median(ratios):.2f}   "
          f"total time ratio: {total_ours / total_theirs:.2f}   (target <= 1.0)")

    found = {"our text": 0, "our evidence": 0, "evidence with names": 0, "trafilatura text": 0}
    named = {"names in evidence": 0, "in trafilatura text": 0}
    misses: list[str] = []
    cases = named_cases = 0
    extractor = EvidenceExtractor(max_chars=args.budget)
    for fx in pages:
        doc: Document = extract(as_page(fx))
        traf_text = trafilatura.extract(fx.html) or ""
        for case in fx.cases:
            cases += 1
            evidence = extractor.extractive(doc, case.goal, url=doc.url)
            found["our text"] += case.answer in doc.text
            found["our evidence"] += case.answer in evidence
            found["evidence with names"] += case.answer in evidence and case.name in evidence
            found["trafilatura text"] += case.answer in traf_text
            if case.name:
                named_cases += 1
                named["names in evidence"] += case.name in evidence
                named["in trafilatura text"] += case.name in traf_text
            if case.answer not in evidence:
                misses.append(f"{fx.name}: {case.goal!r} -> {case.answer!r} "
                              f"({'in text, not chosen' if case.answer in doc.text else 'lost in extraction'})")
            elif case.name not in evidence:
                misses.append(f"{fx.name}: {case.goal!r} -> {case.answer!r} without its name {case.name!r} "
                              f"({'in text, not in the evidence' if case.name in doc.text else 'lost in extraction'})")
    print(f"\nanswer recall over {cases} cases (target >= 0.98 for our evidence with names):")
    for name, n in found.items():
        print(f"  {name:<20} {n / cases:.3f}  ({n}/{cases})")
    print(f"of the {named_cases} cases whose answer belongs to a name (signature, term, header, lead-in):")
    for name, n in named.items():
        print(f"  {name:<20} {n / named_cases:.3f}  ({n}/{named_cases})")
    if args.show_misses:
        for miss in misses:
            print("  miss:", miss)


if __name__ == "__main__":
    main()
