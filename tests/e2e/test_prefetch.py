"""Reading ahead in a research run: the pages a search found are read while the model writes its
next turn (fake SGLang, fake SearXNG and fake web on 127.0.0.1, the real graph and saver)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fathom.app.runs import run_question
from fathom.app.services import build_services
from tests.conftest import call, fake_settings, research_script
from tests.fakes.web import FakeWeb


def once_requested(web: FakeWeb, paths: list[str], reply: str, seen: list[dict[str, int]]) -> Callable[[str], str]:
    """A model turn that is written while ``paths`` are requested from the web: it returns
    ``reply`` once each was asked for (or after 10 s), noting what the web had served by then."""

    def write(prompt: str) -> str:
        deadline = time.monotonic() + 10
        while any(web.hits[p] == 0 for p in paths) and time.monotonic() < deadline:
            time.sleep(0.005)
        seen.append({p: web.hits[p] for p in paths})
        return reply

    return write


def read_ahead_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("read ahead")]


async def test_the_pages_a_turn_reads_were_read_while_it_was_written(sglang, searxng, web):
    search, reads, answer = research_script(web)
    seen: list[dict[str, int]] = []
    sglang.add(search, once_requested(web, ["/article", "/news/tram"], reads, seen), answer)
    settings = fake_settings(sglang, searxng, web)
    async with build_services(settings) as services:
        summary = await run_question("When did the Kestrel Bridge open?", settings, run_id="ahead", services=services)
        prefetch = services.tools.prefetcher
        assert summary["status"] == "answered" and summary["answer"] == "1897"
        # Both pages were requested before the turn that reads them was written...
        assert seen == [{"/article": 1, "/news/tram": 1}]
        # ...and its reads took them: one request each, the evidence as always.
        assert web.hits["/article"] == 1 and web.hits["/news/tram"] == 1
        assert prefetch.counts["used"] == 2
        assert "14 June 1897" in sglang.prompts[-1]
        assert prefetch.pending == 0 and not read_ahead_tasks()


async def test_a_run_that_answers_leaves_no_read_ahead_running(sglang, searxng, web):
    searxng.set_results([{"title": "Slow", "url": web.url("/slow"), "snippet": "Late."}] + searxng.results)
    seen: list[dict[str, int]] = []
    sglang.add(
        "Search first.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening"),
        once_requested(web, ["/slow"], "I know it already.</think>\n\nIt opened in \\boxed{1897}.", seen),
    )
    settings = fake_settings(sglang, searxng, web, prefetch_pages=1)
    async with build_services(settings) as services:
        summary = await run_question("When did the Kestrel Bridge open?", settings, run_id="done", services=services)
        # The read of /slow (5 s) was under way when the model answered; the run did not wait for it.
        assert summary["status"] == "answered" and seen == [{"/slow": 1}]
        prefetch = services.tools.prefetcher
        assert prefetch.counts["cancelled"] == 1 and prefetch.pending == 0
        assert not read_ahead_tasks()
        assert web.hits["/article"] == 0  # only the top result was read ahead (prefetch_pages=1)
