"""What the fault suite (tests/e2e/test_faults.py) and ``bench/faults.py`` share: numbered
questions with pages of their own, a search model that is a pure function of its prompt, and a
driver that runs many questions in one process the way ``fathom eval`` does (one store, one set
of services, :func:`fathom.app.runs.execute` per question) and resumes any run a fault stopped.

Question ``i`` asks when bridge number ``i`` opened; its model searches once, reads
``/bridge/i/a`` and ``/bridge/i/b`` in one turn, then answers ``1800 + i``. Every tool call of
every run is distinct, so a repeated call shows up in the fakes' counters: a page hit twice, a
search query sent twice (run with ``no_cache``, so a repeat cannot hide in the tool cache).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fathom.settings import Settings
from tests.fakes.search_apis import FakeSearxng
from tests.fakes.web import FakeWeb

_NUMBER = re.compile(r"bridge number (\d+)")


def question(i: int) -> str:
    return f"In which year did bridge number {i} open?"


def year(i: int) -> str:
    return str(1800 + i)


def add_pages(web: FakeWeb, n: int) -> None:
    """The two pages each of questions ``0..n-1`` reads."""
    for i in range(n):
        web.add_page(f"/bridge/{i}/a", f"<html><head><title>Bridge {i}</title></head><body>"
                     f"<p>Bridge number {i} was opened in {year(i)} by the county.</p></body></html>")
        web.add_page(f"/bridge/{i}/b", f"<html><head><title>Bridge {i} paint</title></head><body>"
                     f"<p>Bridge number {i} is painted green every ten years.</p></body></html>")


def _call(name: str, **arguments: Any) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def search_model(web: FakeWeb, *, extra_urls: Callable[[int], list[str]] | None = None) -> Callable[[str], str]:
    """Fathom-Search as a pure function of the prompt (for ``FakeSGLang(fallback=...)``), so a
    retried or resumed turn is answered exactly as the first time. ``extra_urls(i)`` adds pages
    to question ``i``'s reading turn."""

    def reply(prompt: str) -> str:
        match = _NUMBER.search(prompt)
        if match is None:
            return "No question found.</think>\n\nI cannot tell: \\boxed{unknown}"
        i = int(match.group(1))
        seen = prompt.count("<tool_response>")
        if seen == 0:
            return "Search first.</think>\n\n" + _call("search_urls", query=f"bridge number {i} opening")
        if seen == 1:
            urls = [web.url(f"/bridge/{i}/a"), web.url(f"/bridge/{i}/b"), *(extra_urls(i) if extra_urls else [])]
            return "Read them.</think>\n\n" + "\n".join(
                _call("query_url", url=url, goal=f"When did bridge number {i} open?") for url in urls)
        return f"The first page says so.</think>\n\nBridge number {i} opened in \\boxed{{{year(i)}}}."

    return reply


@dataclass
class Outcome:
    """How one question's run went: its first status, how often it was resumed, its end."""

    run_id: str
    index: int
    first_status: str
    resumes: int = 0
    status: str = ""
    answer: str | None = None
    errors: list[str] = field(default_factory=list)  # one line per stop, as the run recorded it
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


async def run_questions(settings: Settings, indices: list[int], *, prefix: str = "q", max_resumes: int = 3,
                        shared_services: bool = True) -> list[Outcome]:
    """Run question ``i`` for each of ``indices`` at once on ``settings.db_url``; resume (up to
    ``max_resumes`` times) each run that stopped ``interrupted``, as ``fathom resume`` does.

    ``shared_services``: one store and one set of services for all runs (as ``fathom eval``);
    otherwise every run opens its own, as separate ``fathom research`` calls would in one process.
    """
    from fathom.app.runs import execute, research, resume
    from fathom.app.services import build_services
    from fathom.store import open_store

    async def first(store: Any, services: Any, i: int) -> Outcome:
        run_id = f"{prefix}{i}"
        inputs = {"question": question(i), "deepresearch": False, "review_plan": False, "language": settings.language}
        try:
            if store is None:
                summary = await research(question(i), settings, run_id=run_id)
            else:
                record = await store.runs.create(run_id, question(i), options={**settings.public_dict(), "inputs": inputs})
                summary = await execute(store, record, settings, payload=inputs, services=services)
            return Outcome(run_id, i, summary["status"], status=summary["status"], answer=summary["answer"],
                           tool_calls=summary["tool_calls"])
        except Exception as exc:  # noqa: BLE001  # recorded: the caller counts what stopped and why
            return Outcome(run_id, i, "stopped", errors=[f"{type(exc).__name__}: {' '.join(str(exc).split())}"])

    if shared_services:
        async with open_store(settings.db_url) as store, build_services(settings, database=store.db) as services:
            outcomes = await asyncio.gather(*(first(store, services, i) for i in indices))
    else:
        outcomes = await asyncio.gather(*(first(None, None, i) for i in indices))

    async def finish(outcome: Outcome) -> None:
        while outcome.status != "answered" and outcome.resumes < max_resumes:
            async with open_store(settings.db_url) as store:
                record = await store.runs.get(outcome.run_id)
            if record is None or record.status != "interrupted":
                outcome.status = record.status if record else "missing"
                return
            outcome.resumes += 1
            try:
                summary = await resume(outcome.run_id, {}, db_url=settings.db_url)
            except Exception as exc:  # noqa: BLE001
                outcome.errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
                continue
            outcome.status, outcome.answer, outcome.tool_calls = summary["status"], summary["answer"], summary["tool_calls"]

    await asyncio.gather(*(finish(o) for o in outcomes))
    return outcomes


def repeated_tool_calls(web: FakeWeb, searxng: FakeSearxng, indices: list[int]) -> dict[str, int]:
    """Tool calls that reached a fake more than once: ``{what: times}`` (empty when none)."""
    repeats: dict[str, int] = {}
    for i in indices:
        for page in (f"/bridge/{i}/a", f"/bridge/{i}/b"):
            if web.hits[page] > 1:
                repeats[page] = web.hits[page]
    queries = Counter(r["params"]["q"] for r in searxng.requests if r["params"].get("pageno", "1") == "1"
                      and r.get("status", 200) == 200)
    repeats.update({f"search {q!r}": n for q, n in queries.items() if n > 1})
    return repeats
