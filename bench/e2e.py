"""End to end: Fathom against a seed-equivalent loop, on the same loopback fakes, in one run.

The seed loop is this file's own code with the upstream search loop's semantics (see
shared/reference/fathom-protocol.md §3): a raw ChatML transcript over SGLang ``/generate``, the
turn's tool calls run one after another, a page read returns the first 15,000 characters of the
page's text, no verification, nothing durable. Fathom runs as ``fathom research`` does, minus
the process start: ``fathom.app.runs.research`` per question (run registry and checkpoints in
SQLite with durable steps, passages as evidence, the verify node with its judge).

Both loops talk to the same fakes, in a process of their own: the fake SGLang server of the test
suite, decoding at ``--decode`` tokens/s and prefilling what its prefix cache lacks at
``--prefill`` tokens/s (the judge is its chat route); the fake web with ``--page-latency`` seconds
per page; a fake SearXNG with ``--search-latency`` seconds per query. The search model is one
function of the prompt, the same for both loops: search, read the answer page and a distractor in
one turn, answer once the fact is in front of it (else read one more page). A quarter of the
questions are answered in other words than the page's (a date reordered), so the verifier's
judge has work; the rest appear on the page as written, or with its digit grouping.

Fathom reads the top ``--prefetch`` results of each search ahead while the model writes its next
turn (``fathom research --prefetch``); ``--without-prefetch`` adds a third loop, Fathom with
``--prefetch 0``, so the effect of reading ahead is measured side by side.

Questions rotate which loop goes first, and each loop starts each question with the model's
prefix cache flushed (``POST /flush_cache``), as the loops' prompts for one question share their
beginning. Every request the fakes serve is timed there, so per
question: model time (the union of model requests in flight), tool time (pages and searches),
and the rest: wall minus the union of both, i.e. what neither the model nor a tool accounts for.

    .venv/bin/python bench/e2e.py [--questions 8] [--page-latency 0.25,2] [--decode 50] [--prefill 5000] \
        [--prefetch 3] [--without-prefetch]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import multiprocessing
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from fathom.aio import run_own_loop  # noqa: E402
from tests.fakes.server import LoopbackServer  # noqa: E402
from tests.fakes.sglang import count_tokens  # noqa: E402
from tests.fakes.timing import Interval, TimedModel, TimedSearxng, timed  # noqa: E402
from tests.fakes.web import FakeWeb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CONTEXT = 40960
HEAD_CHARS = 15_000  # what the seed's page read returns
NAMES = [
    "Alder", "Brantwood", "Corrie", "Dunmore", "Elstow", "Fenwick", "Garth", "Holloway", "Ivel", "Jessop",
    "Kestrel", "Lanark", "Marlow", "Netherby", "Orwell", "Penrith", "Quarry", "Redcliffe", "Selby", "Thornbury",
    "Ullswater", "Varley", "Wensley", "Yarrow", "Zennor", "Ashby", "Bourne", "Calder", "Dovey", "Eskdale",
    "Fowey", "Glaven", "Hamble", "Irwell", "Kennet", "Loddon", "Mersey", "Nidd", "Ouse", "Piddle",
]
TOPICS = ["masonry", "tolls", "floods", "trams", "repairs", "lighting", "painting", "surveys", "ferries", "bylaws"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]


# ---- the world: questions and pages -------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    number: int
    name: str
    kind: str  # year | cost | engineer | date (the date is answered in other words than the page's)
    text: str
    gold: str
    fact: str  # the sentence on the answer page
    key: str  # what the model looks for in what it read

    @property
    def slug(self) -> str:
        return self.name.lower().replace(" ", "-")


def questions(n: int) -> list[Question]:
    made = []
    for i in range(n):
        name = NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else f" {i // len(NAMES) + 1}")
        year, day, month = 1850 + (i * 7) % 90, 1 + (i * 5) % 27, MONTHS[i % len(MONTHS)]
        cost = 10_000 + (i * 3_517) % 80_000
        engineer = f"{['Harriet', 'Thomas', 'Agnes', 'William'][i % 4]} {['Molyneux', 'Pryce', 'Trevelyan', 'Ashdown'][i // 4 % 4]}"
        opened = f"The {name} Bridge was opened to traffic on {day} {month} {year} by the county surveyor."
        kind = ["year", "cost", "engineer", "date"][i % 4]
        if kind == "year":
            made.append(Question(i, name, kind, f"In what year did the {name} Bridge open to traffic?", str(year),
                                 opened, str(year)))
        elif kind == "cost":
            made.append(Question(i, name, kind, f"How many pounds did building the {name} Bridge cost?", str(cost),
                                 f"Building the {name} Bridge cost £{cost:,} in all, paid by subscription.", f"{cost:,}"))
        elif kind == "engineer":
            made.append(Question(i, name, kind, f"Which engineer designed the {name} Bridge?", engineer,
                                 f"The {name} Bridge was designed by the engineer {engineer}, then aged 31.", engineer))
        else:
            made.append(Question(i, name, kind, f"On what date did the {name} Bridge open to traffic?",
                                 f"{month} {day}, {year}", opened, f"{day} {month} {year}"))
    return made


def page_html(q: Question, which: str, chars: int = 20_000) -> str:
    """The answer page (``a``, the fact a quarter of the way in), a distractor (``b``) or a second
    source (``c``, the fact near the top); the rest is archive filler about the same bridge."""
    topics = TOPICS[q.number % 10:] + TOPICS[: q.number % 10]
    sentences = [
        f"Record {k} on the {topics[k % 10]} of the {q.name} crossing notes detail number {q.number * 97 + k} "
        "for the district archive, with a cross-reference to the parish minutes."
        for k in range(chars // 150)
    ]
    if which != "b":
        at = len(sentences) // 4 if which == "a" else 3
        sentences.insert(at, q.fact)
    paragraphs = "".join(f"<p>{' '.join(sentences[k:k + 5])}</p>\n" for k in range(0, len(sentences), 5))
    title = {"a": "History", "b": "Archive notes", "c": "Gazetteer"}[which]
    return (f"<html><head><title>{q.name} Bridge: {title}</title></head><body><nav>Home | Bridges</nav>"
            f"<article><h1>{q.name} Bridge</h1>{paragraphs}</article><footer>Parish archive</footer></body></html>")


# ---- the search model: one function of the prompt ----------------------------------------------


def thinking(q: Question, turn: int, tokens: int) -> str:
    words = (f"I am looking for the answer about the {q.name} Bridge and weighing what I have so far "
             f"before the next step of round {turn}. ")
    return (words * (tokens * 4 // len(words) + 1))[: tokens * 4]


def model(qs: list[Question], web_base: str) -> Callable[[str], str]:
    by_name = {q.name: q for q in qs}

    def call(name: str, **arguments: Any) -> str:
        return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"

    def reply(prompt: str) -> str:
        if "You check research answers" in prompt:  # the verifier's judge
            return '{"supported": true, "sources": [1], "reason": "the page gives the date in other words"}'
        first_user = prompt[prompt.find("<|im_start|>user\n"):]
        q = next(by_name[n] for n in sorted(by_name, key=len, reverse=True) if f"the {n} Bridge" in first_user)
        turn = prompt.count("<|im_start|>assistant\n<think>")
        results = prompt.split("<tool_response>")[1:]
        reads = [r for r in results if '"query_url"' in r[:300]]
        think = thinking(q, turn, 90 + 15 * (q.number % 5))
        if not results:
            return f"{think}</think>\n\n" + call("search_urls", query=q.text)
        if not reads:
            return (f"{think}</think>\n\n" + call("query_url", url=f"{web_base}/{q.slug}/a", goal=q.text) + "\n"
                    + call("query_url", url=f"{web_base}/{q.slug}/b", goal=q.text))
        if any(q.key in r for r in reads):
            return f"{think}</think>\n\nThe answer is \\boxed{{{q.gold}}}."
        if len(reads) < 3:
            return f"{think}</think>\n\n" + call("query_url", url=f"{web_base}/{q.slug}/c", goal=q.text)
        return f"{think}</think>\n\nI could not find it: \\boxed{{unknown}}."

    return reply


# ---- the fakes, timed, in their own process ------------------------------------------------------

class TimedSearch(TimedSearxng):
    """SearXNG whose hits depend on the bridge named in the query, answering after ``latency_s``."""

    def __init__(self, hits: dict[str, list[dict[str, str]]], latency_s: float, sink: list[Interval],
                 lock: threading.Lock) -> None:
        self.hits, self.latency_s = hits, latency_s
        super().__init__(sink, lock, [], api_key=None)

    async def _search(self, request: Any) -> Any:
        await asyncio.sleep(self.latency_s)
        query = request.query_params.get("q", "")
        self.results = next((hits for name, hits in self.hits.items() if f"the {name} Bridge" in query), [])
        return await super()._search(request)


def serve_fakes(conn: Connection, n: int, page_latency_s: float, search_latency_s: float,
                decode: float, prefill: float) -> None:
    """Start the fakes, send their URLs, then answer ``intervals`` until ``stop``."""
    sink: list[Interval] = []
    lock = threading.Lock()
    qs = questions(n)
    web = FakeWeb()
    web._server = LoopbackServer(timed(web._server.app, lambda scope: "page", sink, lock))  # before it starts
    with web:
        for q in qs:
            for which in "abc":
                web.add_page(f"/{q.slug}/{which}", page_html(q, which), delay_s=page_latency_s)
        # Ten hits a query, as a real engine's first page has (fewer would make Fathom's SearXNG
        # backend ask for a second page); the model reads a, b and maybe c.
        pages = [("a", "History"), ("b", "Archive notes"), ("c", "Gazetteer")] + [(f"x{k}", f"Notes {k}") for k in range(7)]
        hits = {q.name: [{"title": f"{q.name} Bridge: {t}", "url": web.url(f"/{q.slug}/{w}"),
                          "snippet": f"Records of the {q.name} Bridge."} for w, t in pages] for q in qs}
        with (TimedSearch(hits, search_latency_s, sink, lock) as search,
              TimedModel(sink, lock, fallback=model(qs, web.base_url), context_length=CONTEXT,
                         decode_tokens_per_s=decode, prefill_tokens_per_s=prefill) as sglang):
            conn.send({"sglang": sglang.url, "searxng": search.url, "web": web.hostport, "web_base": web.base_url})
            while (message := conn.recv()) != "stop":
                with lock:
                    conn.send(list(sink) if message == "intervals" else None)


# ---- the seed-equivalent loop ----------------------------------------------------------------------

_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.DOTALL | re.IGNORECASE)


class SeedLoop:
    """Upstream semantics, our code: raw ChatML, sequential calls, raw page heads, no verify."""

    def __init__(self, model_url: str, searxng_url: str, system: str) -> None:
        self.model_url, self.searxng_url, self.system = model_url, searxng_url, system
        self.http = httpx.AsyncClient(timeout=120)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def answer(self, question: str, max_turns: int = 64) -> str:
        transcript = (f"<|im_start|>system\n{self.system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
                      "<|im_start|>assistant\n<think>")
        text = ""
        for _ in range(max_turns):
            budget = CONTEXT - count_tokens(transcript) - 100
            reply = await self.http.post(f"{self.model_url}/generate", json={"text": transcript, "sampling_params": {
                "temperature": 0.6, "max_new_tokens": budget, "repetition_penalty": 1.05}})
            text = reply.json()["text"]
            transcript += text + "<|im_end|>"
            calls = self._calls(text)
            if not calls:
                break
            blocks = ""
            for raw in calls:  # one after another, in order of appearance
                blocks += f"<tool_response>{raw}\n{await self._execute(raw)}\n</tool_response>\n"
            transcript += f"\n<|im_start|>user\n{blocks}<|im_end|>\n<|im_start|>assistant\n<think>"
        return _boxed(text)

    @staticmethod
    def _calls(text: str) -> list[str]:
        opens, closes = text.count("<tool_call>"), text.count("</tool_call>")
        return [span.strip() for span in _CALL.findall(text)] if opens == closes else []

    async def _execute(self, raw: str) -> str:
        try:
            call = json.loads(raw)
            args = call.get("arguments") or {}
            if call["name"] == "search_urls":
                result = await self._search(args["query"], int(args.get("top_k", 10)))
            elif call["name"] == "query_url":
                result = await self._read(args["url"])
            else:
                result = f"[tool-error] unknown tool {call['name']}"
        except Exception as exc:  # the model reads every failure as text
            return f"error: {exc}"
        return f"result: \n{result}".strip() if result else ""

    async def _search(self, query: str, top_k: int) -> str:
        reply = await self.http.get(f"{self.searxng_url}/search", params={"q": query, "format": "json"})
        hits = reply.json()["results"][:top_k]
        return "\n---\n\n".join(f"### {i}. {h['title']}\n**URL**: {h['url']}\n\n**Snippet**: {h['content']}\n"
                                for i, h in enumerate(hits, start=1))

    async def _read(self, url: str) -> str:
        reply = await self.http.get(url)
        if reply.status_code != 200:
            return f"[failed to retrieve content from {url}]"
        text = html.unescape(_TAGS.sub(" ", reply.text))
        return " ".join(text.split())[:HEAD_CHARS]


def _boxed(text: str) -> str:
    start = text.rfind("\\boxed{")
    if start == -1:
        return text[-200:].strip().lower()
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return text[i + 1:].strip()


# ---- measuring ---------------------------------------------------------------------------------------


def union(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by at least one interval."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total, end = 0.0, lo
    for a, b in clipped:
        if b > end:
            total += b - max(a, end)
            end = b
    return total


@dataclass
class Tally:
    walls: list[float] = field(default_factory=list)
    model: list[float] = field(default_factory=list)
    judge: list[float] = field(default_factory=list)
    tools: list[float] = field(default_factory=list)
    tools_alone: list[float] = field(default_factory=list)  # tool time while no model request ran
    rest: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)  # the modelled decoding of its completions
    correct: int = 0
    judge_calls: int = 0
    verbatim: int = 0
    warmup: float = 0.0  # wall seconds of the uncounted first question

    def add(self, window: tuple[float, float], spans: list[Interval]) -> None:
        lo, hi = window
        pick = lambda *kinds: [(a, b) for k, a, b in spans if k in kinds]  # noqa: E731
        self.walls.append(hi - lo)
        self.model.append(union(pick("model", "judge"), lo, hi))
        self.judge.append(union(pick("judge"), lo, hi))
        self.tools.append(union(pick("page", "search"), lo, hi))
        everything = union(pick("model", "judge", "page", "search"), lo, hi)
        self.tools_alone.append(everything - self.model[-1])
        self.rest.append(hi - lo - union(pick("model", "judge", "page", "search"), lo, hi))
        self.judge_calls += sum(1 for k, a, b in spans if k == "judge" and lo <= a < hi)
        self.decode.append(sum(b - a for k, a, b in spans if k == "decode" and lo <= a < hi))


def normalised(answer: str) -> str:
    return " ".join(re.sub(r"[^\w ]", " ", answer.lower()).replace(",", "").split())


async def run_latency(args: argparse.Namespace, page_latency: float) -> dict[str, Tally]:
    from fathom.app.runs import research
    from fathom.protocols.fathom import python_repr_schemas
    from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT
    from fathom.settings import Settings

    qs = questions(args.questions + 1)  # the first warms both loops up (imports, connections) and is not counted
    # The judge's chat client imports the OpenAI SDK when first used (~0.5-1.5 s, once a process);
    # the warm-up question never reaches the judge, so without this the first reworded question
    # of whichever Fathom loop gets there first would pay it (always the same loop: the order rotates).
    import openai  # noqa: F401
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    fakes = ctx.Process(target=serve_fakes, args=(child, args.questions + 1, page_latency, args.search_latency,
                                                  args.decode, args.prefill), daemon=True)
    fakes.start()
    prefetch = {"fathom": args.prefetch} | ({"no-ahead": 0} if args.without_prefetch else {})
    names = ["seed", *prefetch]
    tallies = {name: Tally() for name in names}
    windows: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    warmup: dict[str, float] = {}
    traces: dict[str, list[list[tuple[float, str]]]] = {name: [] for name in names}  # progress events a run
    try:
        urls = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            settings = {loop: Settings.load({
                "search_model_url": urls["sglang"], "search_backend": "searxng", "searxng_url": urls["searxng"],
                "allow_hosts": [urls["web"]], "verify": args.verify, "db_url": f"sqlite:///{tmp}/{loop}.db",
                "prefetch_pages": pages,
            }, environ={}) for loop, pages in prefetch.items()}
            seed = SeedLoop(urls["sglang"], urls["searxng"], DEFAULT_SEARCH_PROMPT.render(python_repr_schemas()))
            try:
                for q in qs:
                    at = q.number % len(names)
                    for loop in names[at:] + names[:at]:
                        # Every loop starts each question cold: the loops ask the same questions, so
                        # the fake's prefix cache would otherwise favour whichever goes second.
                        await seed.http.post(f"{urls['sglang']}/flush_cache")
                        start = time.monotonic()
                        if loop == "seed":
                            answer = await seed.answer(q.text)
                        else:
                            events: list[tuple[float, str]] = []
                            traces[loop].append(events)
                            summary = await research(q.text, settings[loop], run_id=f"q{q.number}", on_event=lambda e, ev=events: ev.append(
                                (time.monotonic(), f"{e.get('event')} {e.get('name') or ''}".strip())))
                            answer = summary["answer"] or ""
                            by = (summary.get("verification") or {}).get("decided_by")
                            tallies[loop].verbatim += q.number > 0 and by == "verbatim in evidence"
                        if q.number == 0:
                            warmup[loop] = time.monotonic() - start
                            continue
                        windows[loop].append((start, time.monotonic()))
                        tallies[loop].correct += normalised(answer) == normalised(q.gold)
            finally:
                await seed.aclose()
        parent.send("intervals")
        spans: list[Interval] = parent.recv()
        parent.send("stop")
    finally:
        fakes.join(timeout=10)
        if fakes.is_alive():
            fakes.kill()
    for loop, tally in tallies.items():
        tally.warmup = warmup[loop]
        for window in windows[loop]:
            tally.add(window, spans)
    if args.trace is not None:
        for loop in prefetch:
            for (lo, hi), rest, events in zip(windows[loop], tallies[loop].rest, traces[loop][1:], strict=True):
                if rest > args.trace:
                    print_trace(loop, lo, hi, rest, events, spans)
    return tallies


def print_trace(loop: str, lo: float, hi: float, rest: float, events: list[tuple[float, str]],
                spans: list[Interval]) -> None:
    """One question's timeline: the run's progress events and the fakes' requests, seconds from its start."""
    lines = [(t, f"event {name}") for t, name in events]
    lines += [(a, f"{kind} {b - a:.3f} s") for kind, a, b in spans if lo <= a < hi]
    print(f"-- {loop}: {hi - lo:.2f} s, non-model non-tool {rest:.2f} s")
    for t, what in sorted(lines):
        print(f"   {t - lo:7.3f}  {what}")


def startup(repeats: int = 7) -> dict[str, tuple[float, float]]:
    """Fastest wall and CPU seconds of ``repeats`` fresh interpreters: bare Python, ``fathom --help``,
    ``fathom research --help``, and importing what a research run imports before its first model
    call. Bytecode is cached (in a temporary prefix), as in an installed package."""
    imports = "import fathom.cli.main, fathom.app.runs, fathom.app.services, fathom.store, fathom.cli.progress"
    runs = {
        "python": [PYTHON, "-c", "pass"],
        "fathom --help": [PYTHON, "-m", "fathom", "--help"],
        "fathom research --help": [PYTHON, "-m", "fathom", "research", "--help"],
        "research imports": [PYTHON, "-c", imports],
    }
    best = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPYCACHEPREFIX": cache}
        for name, argv in runs.items():
            walls, cpus = [], []
            for _ in range(repeats + 1):  # the first fills the bytecode cache
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                walls.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            best[name] = (min(walls[1:]), min(cpus[1:]))
    return best


def report(page_latency: float, tallies: dict[str, Tally], n: int) -> None:
    seed, fathom = tallies["seed"], tallies["fathom"]
    total = lambda xs: sum(xs)  # noqa: E731
    print(f"\n== pages {page_latency:g} s: {n} questions")
    print(f"{'loop':<8}{'wall s':>9}{'model s':>9}{'tools s':>9}{'rest s/q':>10}{'judge s':>9}{'judge calls':>13}"
          f"{'correct':>9}")
    for name, t in tallies.items():
        print(f"{name:<8}{total(t.walls):>9.1f}{total(t.model):>9.1f}{total(t.tools):>9.1f}"
              f"{statistics.fmean(t.rest):>10.3f}{total(t.judge):>9.1f}{t.judge_calls:>13}{t.correct:>6}/{n}")
    if "no-ahead" in tallies:
        off = tallies["no-ahead"]
        print(f"reading ahead: wall fathom/no-ahead {total(fathom.walls) / total(off.walls):.2f}, tool time not "
              f"overlapped with the model {total(fathom.tools_alone):.1f} s vs {total(off.tools_alone):.1f} s; "
              f"no-ahead/seed wall {total(off.walls) / total(seed.walls):.2f}")
    print(f"wall ratio fathom/seed {total(fathom.walls) / total(seed.walls):.2f} (target <= 0.75); "
          f"model time ratio {total(fathom.model) / total(seed.model):.2f}; "
          f"fathom non-model non-tool {statistics.fmean(fathom.rest):.3f} s/question (p50 "
          f"{statistics.median(fathom.rest):.3f}, max {max(fathom.rest):.3f}; target <= 0.3), seed "
          f"{statistics.fmean(seed.rest):.3f}")
    if total(seed.decode):  # the same completions for every loop: no loop's wall can fall below it
        print(f"decoding (modelled, at --decode): seed {total(seed.decode):.1f} s, fathom {total(fathom.decode):.1f} s; "
              f"fathom's decoding alone is {total(fathom.decode) / total(seed.walls):.2f} of the seed's wall")
    for name in tallies:
        if name != "seed":
            print(f"{name} non-model non-tool s per question: {' '.join(f'{r:.2f}' for r in tallies[name].rest)}")
    print(f"first (uncounted) question: seed {seed.warmup:.2f} s, fathom {fathom.warmup:.2f} s (lazy imports, "
          "graph compile, database creation)")
    print(f"judge share of fathom's wall {total(fathom.judge) / total(fathom.walls):.1%} "
          f"({fathom.judge_calls} judge calls; {fathom.verbatim}/{n} answers settled verbatim in evidence)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--page-latency", default="0.25,2", help="seconds per page, comma-separated: one run each")
    parser.add_argument("--search-latency", type=float, default=0.3, help="seconds per search")
    parser.add_argument("--decode", type=float, default=50.0, help="model decode, tokens/s")
    parser.add_argument("--prefill", type=float, default=5000.0, help="model prefill of uncached tokens, tokens/s")
    parser.add_argument("--verify", default="on", help="fathom's --verify: off, on or strict")
    parser.add_argument("--prefetch", type=int, default=3, help="fathom's --prefetch: top results read ahead")
    parser.add_argument("--without-prefetch", action="store_true", help="also run fathom with --prefetch 0")
    parser.add_argument("--trace", type=float, default=None, metavar="S",
                        help="print the timeline of each fathom question with more than S s outside model and tools")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    args = parser.parse_args()
    print(f"{args.questions} questions, one at a time; model {args.decode:g} tok/s decode, {args.prefill:g} tok/s "
          f"prefill of uncached prompt tokens; search {args.search_latency:g} s; fathom --verify {args.verify}")
    for latency in [float(x) for x in args.page_latency.split(",")]:
        report(latency, run_own_loop(run_latency(args, latency)), args.questions)
    if not args.no_startup:
        best = startup()
        print("\n== start-up (fastest of 7 fresh processes, bytecode cached)")
        for name, (wall, cpu) in best.items():
            print(f"{name:<26}wall {wall:6.3f} s   CPU {cpu:6.3f} s")


if __name__ == "__main__":
    main()
