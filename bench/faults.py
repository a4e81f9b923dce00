"""The fault suite at full size (issue 15): what each fault does to many research runs, in figures.

tests/e2e/test_faults.py checks each fault once, small; this script runs the sizes the issue
names and prints counts (no timings are asserted anywhere). Everything is loopback fakes and real
databases: SQLite in a temp directory, PostgreSQL at ``FATHOM_TEST_PG_URL`` (default
127.0.0.1:5432/test) in a scratch database dropped afterwards (its sections are skipped, saying
why, when it is unreachable). Questions, pages and the search model are those of
``tests/support/faults.py``: question ``i`` searches once, reads two pages of its own, answers
``1800 + i``; every tool call is distinct, so a repeated one shows in the fakes' counters.

Sections (``--only`` picks some):

- ``model``: ``--questions`` runs at once against a fake SGLang answering 10 % of requests 503,
  leaving 5 % hanging (released when the client's ``model_timeout_s`` of 2 s gives up) and
  cutting 5 % mid-answer (seeded: ``--seed``); with the default ``model_retries`` 3 and with 1
  (so that some runs stop). A run that stops ``interrupted`` is resumed as ``fathom resume`` does.
- ``web``: one run reading every faulty page of the fake web besides its own two.
- ``search``: ``--questions`` runs in a storm of 429s with ``Retry-After``.
- ``pg-kill``: ``--questions`` runs on PostgreSQL while every backend of the database is
  terminated from a second connection, ``--pg-kills`` times, 0.3 s apart.
- ``disk``: ``fathom research`` on a full disk (``RLIMIT_FSIZE``) and on a read-only SQLite file.
- ``concurrent``: ``--concurrent`` runs in one process on one SQLite file and on PostgreSQL, with
  one store and one set of services (as ``fathom eval``) and with each run opening its own.
- ``sigkill``: ``--kills`` runs per database, each ``fathom research`` SIGKILLed at a random
  moment of its run (uniform over the time an unkilled run takes from its first model request
  to its end; a turn takes 0.4 s, a page 0.3 s) and then ``fathom resume``d: the same answer and
  tool calls as a run never killed? a page fetched again after its reading was durable (found in
  the database before the resume)?

    .venv/bin/python bench/faults.py [--questions 30] [--concurrent 32] [--kills 20] [--pg-kills 10]
                                     [--seed 7] [--only model,web,search,pg-kill,disk,concurrent,sigkill]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402

from fathom.aio import run_own_loop  # noqa: E402
from fathom.app.runs import load_state, run_config  # noqa: E402
from fathom.settings import Settings  # noqa: E402
from fathom.store import open_store  # noqa: E402
from fathom.store.checkpoints.testing import scratch_database, server_url  # noqa: E402
from fathom.store.urls import resolve_url  # noqa: E402
from tests.conftest import cli_env, fake_env  # noqa: E402
from tests.fakes.search_apis import FakeSearxng  # noqa: E402
from tests.fakes.sglang import FakeSGLang, Faults, Reply  # noqa: E402
from tests.fakes.web import FakeWeb  # noqa: E402
from tests.support.faults import (  # noqa: E402
    Outcome,
    add_pages,
    question,
    repeated_tool_calls,
    run_questions,
    search_model,
    year,
)

SECTIONS = ("model", "web", "search", "pg-kill", "disk", "concurrent", "sigkill")
WEB_FAULTS = ("/slow", "/endless", "/huge", "/download", "/loop/1", "/error500", "/bad-charset", "/dropped")
ROOT = Path(__file__).resolve().parents[1]


def settings_for(sglang: FakeSGLang, searxng: FakeSearxng, web: FakeWeb, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "search_model_url": sglang.url, "search_backend": "searxng", "searxng_url": searxng.url,
        "allow_hosts": [web.hostport], "verify": False, "no_cache": True, "fetch_timeout_s": 5,
        "tool_timeout_s": 10,
    }
    return Settings.load({**values, **overrides}, environ={})


@contextlib.contextmanager
def fakes(model: Any = None) -> Iterator[tuple[FakeWeb, FakeSearxng, FakeSGLang]]:
    with FakeWeb(slow_s=30) as web, FakeSearxng([{"title": "A bridge", "url": web.url("/article"),
                                                  "snippet": "Bridges."}], api_key=None) as searxng:
        with FakeSGLang(fallback=model or search_model(web)) as sglang:
            yield web, searxng, sglang


def pg_url() -> str | None:
    url, why = server_url("postgresql")
    if url is None:
        print(f"  (skipped: PostgreSQL unreachable: {why})")
    return url


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """The counts every section prints."""
    stops = Counter(e.split(":")[0] for o in outcomes for e in o.errors)
    return {
        "runs": len(outcomes),
        "answered without stopping": sum(o.first_status == "answered" and o.status == "answered" for o in outcomes),
        "stopped, then resumed to the end": sum(o.first_status != "answered" and o.status == "answered"
                                                 for o in outcomes),
        "resumes": sum(o.resumes for o in outcomes),
        "not finished": sum(o.status != "answered" for o in outcomes),
        "wrong answers": sum(o.status == "answered" and o.answer != year(o.index) for o in outcomes),
        "stops by error type": dict(stops),
    }


def show(title: str, figures: dict[str, Any]) -> None:
    print(f"== {title}")
    for key, value in figures.items():
        print(f"  {key:<38} {value}")


async def checkpoints_lost(db_url: str, outcomes: list[Outcome], expected: int | None = None,
                           ) -> tuple[int, Counter[int]]:
    """Runs whose final state misses a tool result, or whose checkpoint count differs from the rest."""
    async with open_store(db_url) as store:
        counts: Counter[int] = Counter()
        per_run: dict[str, int] = {}
        for o in outcomes:
            per_run[o.run_id] = len([c async for c in store.saver.alist(run_config(o.run_id))])
            counts[per_run[o.run_id]] += 1
            state = await load_state(store, o.run_id)
            results = [m for m in state.get("messages") or [] if m.type == "tool"]
            if len(results) != 3:
                per_run[o.run_id] = -1
    usual = expected if expected is not None else counts.most_common(1)[0][0]
    return sum(n != usual for n in per_run.values()), counts


# ---- sections ----------------------------------------------------------------------------------


async def model_section(args: argparse.Namespace, tmp: Path) -> None:
    for retries in (3, 1):
        with fakes() as (web, searxng, sglang):
            add_pages(web, args.questions)
            sglang.inject(Faults(args.seed, error=0.10, hang=0.05, drop=0.05))
            db = f"sqlite:///{tmp / f'model-{retries}.db'}"
            settings = settings_for(sglang, searxng, web, db_url=db, model_retries=retries, model_timeout_s=2.0)
            started = time.monotonic()
            outcomes = await run_questions(settings, list(range(args.questions)), max_resumes=10)
            wall = time.monotonic() - started
            model_requests = sum(r["path"] == "/generate" for r in sglang.requests)
            show(f"model server faults: {args.questions} questions at once, model_retries {retries}, seed {args.seed}", {
                **summarize(outcomes),
                "repeated tool calls": len(repeated_tool_calls(web, searxng, list(range(args.questions)))),
                "model requests (answered or failed)": model_requests + sglang.injected["hang"],
                "faults injected": dict(sglang.injected),
                "wall s": round(wall, 1),
            })


async def web_section(args: argparse.Namespace, tmp: Path) -> None:
    with fakes() as (web, searxng, sglang):
        add_pages(web, 1)
        sglang.fallback = search_model(web, extra_urls=lambda i: [web.url(p) for p in WEB_FAULTS])
        db = f"sqlite:///{tmp / 'web.db'}"
        settings = settings_for(sglang, searxng, web, db_url=db, fetch_timeout_s=5.0, fetch_max_bytes=50_000,
                                max_calls_per_turn=10)
        started = time.monotonic()
        [outcome] = await run_questions(settings, [0])
        wall = time.monotonic() - started
        async with open_store(db) as store:
            messages = (await load_state(store, outcome.run_id))["messages"]
    read = {m.artifact["args"]["url"]: m for m in messages if m.type == "tool" and m.name == "query_url"}
    figures: dict[str, Any] = {"run": f"{outcome.status}, answer {outcome.answer} (wall {wall:.1f} s)"}
    for path in WEB_FAULTS:
        m = read[web.url(path)]
        lines = [line for line in m.content.replace(web.url(path), "URL").splitlines() if line.strip()]
        if m.status == "error":
            figures[path] = f"error: {lines[0][:130]}"
            continue
        evidence = next((line for line in lines[1:] if not line.startswith(("Evidence", "["))), "")
        notes = " ".join(line for line in lines if line.startswith("[")) or "no note"
        figures[path] = f"read: {evidence[:40]!r}… {notes[:230]}"
    show("web faults: one run reads them all (fetch_timeout_s 5, fetch_max_bytes 50000)", figures)


async def search_section(args: argparse.Namespace, tmp: Path) -> None:
    with fakes() as (web, searxng, sglang):
        add_pages(web, args.questions)
        storm = args.questions * 2
        searxng.fail_next("rate_limit", times=storm, retry_after=0.5)
        db = f"sqlite:///{tmp / 'search.db'}"
        settings = settings_for(sglang, searxng, web, db_url=db)
        started = time.monotonic()
        outcomes = await run_questions(settings, list(range(args.questions)))
        wall = time.monotonic() - started
        async with open_store(db) as store:
            searches = [m for o in outcomes for m in (await load_state(store, o.run_id))["messages"]
                        if m.type == "tool" and m.name == "search_urls"]
    show(f"search API: a storm of {storm} 429s (Retry-After 0.5 s) over {args.questions} runs at once", {
        **summarize(outcomes),
        "429s served": sum(r.get("status") == 429 for r in searxng.requests),
        "searches that found results": sum(m.status == "success" for m in searches),
        "searches told 'rate limit' (3 tries)": sum("HTTP 429" in m.content for m in searches),
        "repeated tool calls": len(repeated_tool_calls(web, searxng, list(range(args.questions)))),
        "wall s": round(wall, 1),
    })


class _Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def pg_kill_section(args: argparse.Namespace, tmp: Path) -> None:
    if (server := pg_url()) is None:
        return
    web_holder: list[FakeWeb] = []

    def model(prompt: str) -> Reply:  # every turn takes 0.3 s, so the runs last through the kills
        return Reply(search_model(web_holder[0])(prompt), delay_s=0.3)

    with fakes(model) as (web, searxng, sglang), scratch_database(server) as db:
        web_holder.append(web)
        add_pages(web, args.questions)
        settings = settings_for(sglang, searxng, web, db_url=db)
        handler = _Counting()
        engine_log = logging.getLogger("fathom.store.engine")
        engine_log.addHandler(handler)
        engine_log.setLevel(logging.WARNING)
        engine_log.propagate = False  # counted, not printed
        admin = create_engine(resolve_url(db).sync_url)
        terminated: list[int] = []

        async def killer() -> None:
            await asyncio.sleep(0.5)
            for _ in range(args.pg_kills):
                with admin.connect() as conn:
                    terminated.append(len(conn.execute(text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()))
                await asyncio.sleep(0.3)

        started = time.monotonic()
        kills = asyncio.ensure_future(killer())
        outcomes = await run_questions(settings, list(range(args.questions)), max_resumes=5)
        await kills
        wall = time.monotonic() - started
        admin.dispose()
        lost, counts = await checkpoints_lost(db, outcomes)
        engine_log.removeHandler(handler)
        engine_log.propagate = True
        show(f"PostgreSQL: every backend terminated {args.pg_kills} times, 0.3 s apart, under "
             f"{args.questions} runs", {
                 **summarize(outcomes),
                 "backends terminated": sum(terminated),
                 "operations retried on a new connection": sum("trying once more" in line for line in handler.lines),
                 "repeated tool calls": len(repeated_tool_calls(web, searxng, list(range(args.questions)))),
                 "runs with lost checkpoints": lost,
                 "checkpoints per run (count: runs)": dict(counts),
                 "wall s": round(wall, 1),
             })


def _research(db_url: str, env: dict[str, str], limit: int | None = None) -> subprocess.CompletedProcess:
    def preexec() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "fathom", "research", "--quiet", question(0)], cwd=ROOT,
                          env=cli_env(db_url, env), capture_output=True, text=True, timeout=120, preexec_fn=preexec)


async def disk_section(args: argparse.Namespace, tmp: Path) -> None:
    with fakes() as (web, searxng, sglang):
        add_pages(web, 1)
        env = fake_env(sglang, searxng, web)
        figures = {}
        for limit in (8192, 65536, 262144):
            path = tmp / f"full-{limit}.db"
            async with open_store(f"sqlite:///{path}"):
                pass
            result = _research(f"sqlite:///{path}", env, limit)
            figures[f"RLIMIT_FSIZE {limit}"] = f"exit {result.returncode}: {_last_line(result)}"
        path = tmp / "read-only.db"
        async with open_store(f"sqlite:///{path}"):
            pass
        os.chmod(path, 0o444)
        url = f"sqlite:///file:{path}?mode=ro&uri=true" if os.geteuid() == 0 else f"sqlite:///{path}"
        result = _research(url, env)
        figures["read-only file"] = f"exit {result.returncode}: {_last_line(result)}"
    show("SQLite: a full disk, a read-only file (fathom research)", figures)


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1][:300] if lines else ""


async def concurrent_section(args: argparse.Namespace, tmp: Path) -> None:
    targets = [("SQLite", None)]
    server = pg_url()
    if server is not None:
        targets.append(("PostgreSQL", server))
    for name, server in targets:
        for shared in (True, False):
            with fakes() as (web, searxng, sglang), contextlib.ExitStack() as stack:
                n = args.concurrent
                add_pages(web, n)
                db = stack.enter_context(scratch_database(server)) if server else f"sqlite:///{tmp / f'c-{shared}.db'}"
                settings = settings_for(sglang, searxng, web, db_url=db)
                started = time.monotonic()
                outcomes = await run_questions(settings, list(range(n)), shared_services=shared)
                wall = time.monotonic() - started
                lock_errors = sum(any(w in e.lower() for w in ("locked", "deadlock", "serialize", "busy"))
                                  for o in outcomes for e in o.errors)
                lost, counts = await checkpoints_lost(db, outcomes)
                how = "one store and services (as fathom eval)" if shared else "each run its own store and services"
                show(f"{n} concurrent runs in one process on {name}, {how}", {
                    **summarize(outcomes),
                    "lock errors": lock_errors,
                    "runs with lost checkpoints": lost,
                    "checkpoints per run (count: runs)": dict(counts),
                    "repeated tool calls": len(repeated_tool_calls(web, searxng, list(range(n)))),
                    "wall s": round(wall, 1),
                })


def _durable(db_url: str, needle: bytes) -> bool:
    """Whether a tool result holding ``needle`` is in the run database (a write or a checkpoint blob)."""
    engine = create_engine(resolve_url(db_url).sync_url)
    try:
        with engine.connect() as conn:
            for table in ("fathom_writes", "fathom_blobs"):
                for (blob,) in conn.execute(text(f"SELECT blob FROM {table} WHERE blob IS NOT NULL")):  # noqa: S608
                    if needle in bytes(blob):
                        return True
        return False
    finally:
        engine.dispose()


async def sigkill_section(args: argparse.Namespace, tmp: Path) -> None:
    rng = random.Random(args.seed)
    targets = [("SQLite", None)]
    server = pg_url()
    if server is not None:
        targets.append(("PostgreSQL", server))
    web_holder: list[FakeWeb] = []

    def model(prompt: str) -> Reply:  # a turn takes 0.4 s and a page 0.3 s: kills land in all phases
        return Reply(search_model(web_holder[0])(prompt), delay_s=0.4)

    for name, server in targets:
        with fakes(model) as (web, searxng, sglang), contextlib.ExitStack() as stack:
            web_holder[:] = [web]
            n = args.kills
            add_pages(web, n + 1)
            for i in range(n + 1):
                for page in ("a", "b"):
                    web.pages[f"/bridge/{i}/{page}"].delay_s = 0.3
            db = stack.enter_context(scratch_database(server)) if server else f"sqlite:///{tmp / 'sigkill.db'}"
            env = fake_env(sglang, searxng, web)
            env.update({"FATHOM_NO_CACHE": "true"})

            def start(i: int, db: str = db, env: dict[str, str] = env) -> tuple[subprocess.Popen, float]:
                proc = subprocess.Popen([sys.executable, "-m", "fathom", "research", "--quiet", "--json",
                                         "--run-id", f"k{i}", question(i)], cwd=ROOT, env=cli_env(db, env),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                return proc, time.monotonic()

            async def first_prompt(i: int) -> None:  # the run is recorded and under way
                deadline = time.monotonic() + 60
                while not any(question(i) in p for p in list(sglang.prompts)) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)

            # One run never killed: how long a run takes from its first model request, and what it answers.
            proc, _ = start(n)
            await first_prompt(n)
            began = time.monotonic()
            out, _err = await asyncio.to_thread(proc.communicate, timeout=120)
            run_s = time.monotonic() - began
            expected_calls = [c["name"] for c in json.loads(out)["tool_calls"]] if proc.returncode == 0 else None
            figures: Counter = Counter()
            refetched_after_durable: list[str] = []
            for i in range(n):
                proc, _ = start(i)
                await first_prompt(i)
                await asyncio.sleep(rng.uniform(0.0, run_s))
                alive = proc.poll() is None
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                figures["killed mid-run" if alive else "finished before the kill"] += 1
                durable = {page: _durable(db, f"Bridge number {i} {words}".encode())
                           for page, words in (("a", "was opened in"), ("b", "is painted green"))}
                resumed = subprocess.run([sys.executable, "-m", "fathom", "resume", "--quiet", "--json", f"k{i}"],
                                         cwd=ROOT, env=cli_env(db, env), capture_output=True, text=True, timeout=120)
                if resumed.returncode != 0:
                    figures["resume failed"] += 1
                    print(f"  k{i}: resume exit {resumed.returncode}: {_last_line(resumed)}")
                    continue
                result = json.loads(resumed.stdout)
                figures["same answer after resume"] += result["answer"] == year(i)
                figures["same tool calls after resume"] += [c["name"] for c in result["tool_calls"]] == expected_calls
                for page in ("a", "b"):
                    hits = web.hits[f"/bridge/{i}/{page}"]
                    if hits > 1:
                        figures["pages fetched twice (read in flight at the kill)"] += not durable[page]
                        if durable[page]:
                            refetched_after_durable.append(f"k{i}/{page}")
            searches = Counter(r["params"]["q"] for r in searxng.requests if r["params"].get("pageno", "1") == "1")
            show(f"SIGKILL at a random moment of {n} runs on {name} (uniform over the {run_s:.1f} s an unkilled "
                 "run takes from its first model request), then fathom resume", {
                     **dict(figures),
                     "pages fetched again after their reading was durable": len(refetched_after_durable),
                     "searches sent twice": sum(v > 1 for v in searches.values()),
                 })


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=32)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pg-kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    logging.basicConfig(level=logging.ERROR)  # the retries' warnings would drown the figures
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    run = {"model": model_section, "web": web_section, "search": search_section, "pg-kill": pg_kill_section,
           "disk": disk_section, "concurrent": concurrent_section, "sigkill": sigkill_section}
    with tempfile.TemporaryDirectory(prefix="fathom-faults-") as tmp:
        os.environ["XDG_DATA_HOME"] = str(Path(tmp) / "xdg")  # never the user's own database or caches
        for section in chosen:
            started = time.monotonic()
            await run[section](args, Path(tmp))
            print(f"  ({section}: {time.monotonic() - started:.1f} s)\n", flush=True)


if __name__ == "__main__":
    run_own_loop(main())  # as `fathom research` and `fathom eval run` do
