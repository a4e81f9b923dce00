"""Crash and resume, end to end: SIGKILL `fathom research` mid-run, then `fathom resume`.

The model is a deterministic function of its prompt (how many tool results it has seen), so a
resumed run must reach the same answer with the same tool calls as an uninterrupted one. Pages
whose read finished before the kill must never be fetched again.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.conftest import call, cli_env, fake_env
from tests.fakes.sglang import FakeSGLang, Reply

pytestmark = pytest.mark.slow

QUESTION = "When did the Kestrel Bridge open?"
LATE_PAGE = "<html><head><title>Late news</title></head><body><p>The bridge opened in 1897.</p></body></html>"


def model(web, delays: dict[int, float]) -> Callable[[str], Reply]:
    """Fathom-Search as a pure function of the transcript; ``delays[n]`` slows the turn after n results."""

    def reply(prompt: str) -> Reply:
        seen = prompt.count("<tool_response>")
        if seen == 0:
            text = "Search first.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening")
        elif seen == 1:
            text = (
                "Read two pages.</think>\n\n"
                + call("query_url", url=web.url("/article"), goal="When did the bridge open?")
                + "\n"
                + call("query_url", url=web.url("/late"), goal="When did the bridge open?")
            )
        else:
            text = "Both agree.</think>\n\nIt opened in \\boxed{1897}."
        return Reply(text, delay_s=delays.get(seen, 0.0))

    return reply


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def cached_pages(db_path: str) -> set[str]:
    """The URLs whose pages are committed to the page cache."""
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            return {row[0] for row in conn.execute("SELECT url FROM fathom_cache_pages")}
    except sqlite3.Error:
        return set()


def durable_write_mentions(db_path: str, needle: bytes) -> bool:
    """Whether a finished task's result mentioning ``needle`` is already in the checkpoint database."""
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            return any(needle in bytes(row[0]) for row in conn.execute("SELECT blob FROM fathom_writes"))
    except sqlite3.Error:
        return False


def start_research(db_url: str, env: dict[str, str], run_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fathom", "research", "--quiet", "--json", "--run-id", run_id, QUESTION],
        env=cli_env(db_url, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
def late_web(web):
    web.add_page("/late", LATE_PAGE)
    return web


def baseline(cli, searxng, web, tmp_path) -> dict:
    """The same question, uninterrupted, in a database of its own (so its caches stay apart)."""
    env = {"FATHOM_DB_URL": f"sqlite:///{tmp_path / 'baseline.db'}"}
    with FakeSGLang(fallback=model(web, {})) as sglang:
        result = cli("research", "--quiet", "--json", "--run-id", "baseline", QUESTION, env={**fake_env(sglang, searxng, web), **env})
    assert result.returncode == 0, result.stderr
    web.reset()
    searxng.requests.clear()
    return json.loads(result.stdout)


@pytest.mark.parametrize("kill_point", ["model_call", "parallel_reads", "between_rounds"])
def test_killed_run_resumes_to_the_same_answer_without_refetching(kill_point, cli, db_url, searxng, late_web, tmp_path):
    web = late_web
    expected = baseline(cli, searxng, web, tmp_path)
    delays = {"model_call": {1: 60.0}, "between_rounds": {3: 60.0}}.get(kill_point, {})
    if kill_point == "parallel_reads":
        web.pages["/late"].delay_s = 60.0
    db_path = db_url.removeprefix("sqlite:///")

    with FakeSGLang(fallback=model(web, delays)) as sglang:
        env = fake_env(sglang, searxng, web)
        proc = start_research(db_url, env, "crashy")
        try:
            if kill_point == "model_call":
                wait_for(lambda: len(sglang.prompts) >= 2, "the second model call")
                # Meanwhile the top results are read ahead: killed once /article is in the page
                # cache (killed while its read is in flight, it may be fetched again, rightly).
                wait_for(lambda: web.url("/article") in cached_pages(db_path), "the read ahead to be cached")
            elif kill_point == "parallel_reads":
                wait_for(lambda: web.hits["/late"] == 1, "the slow read to start")
                wait_for(lambda: durable_write_mentions(db_path, b"14 June 1897"), "the fast read to be checkpointed")
            else:
                wait_for(lambda: len(sglang.prompts) >= 3, "the final model call")
        finally:
            kill(proc)

        listed = cli("runs", "list", "--json")
        [row] = [json.loads(line) for line in listed.stdout.splitlines() if '"crashy"' in line]
        assert row["status"] == "interrupted"  # its process is gone: not shown as running

        web.pages["/late"].delay_s = 0.0
        sglang.fallback = model(web, {})
        resumed = cli("resume", "--quiet", "--json", "crashy", env=env)

    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["answer"] == expected["answer"] == "1897"
    assert out["tool_calls"] == expected["tool_calls"]
    assert out["sources"] == expected["sources"]
    # A page read that finished before the kill was not fetched again; only the read that was
    # in flight when the process died is fetched a second time.
    assert web.hits["/article"] == 1
    assert web.hits["/late"] == (2 if kill_point == "parallel_reads" else 1)
    # The search ran once in total.
    assert [r["params"]["q"] for r in searxng.requests if r["params"].get("pageno", "1") == "1"] == ["Kestrel Bridge opening"]
    shown = json.loads(cli("runs", "show", "--json", "crashy").stdout)
    assert shown["status"] == "answered" and shown["answer"] == "1897"


def test_resume_with_a_changed_option(cli, db_url, searxng, late_web):
    """A run whose model server died resumes against a new server URL given to resume."""
    web = late_web
    with FakeSGLang(fallback=model(web, {1: 60.0})) as first:
        proc = start_research(db_url, fake_env(first, searxng, web), "moved")
        wait_for(lambda: len(first.prompts) >= 2, "the second model call")
        kill(proc)
    with FakeSGLang(fallback=model(web, {})) as second:
        env = {k: v for k, v in fake_env(second, searxng, web).items() if k != "FATHOM_SEARCH_MODEL_URL"}
        # Without the flag the run keeps its original (dead) server: a clear error.
        stale = cli("resume", "--quiet", "moved", env={**env, "FATHOM_SEARCH_MODEL_URL": second.url})
        assert stale.returncode == 3 and "unreachable" in stale.stderr
        resumed = cli("resume", "--quiet", "--json", "--search-model-url", second.url, "moved", env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["answer"] == "1897"
        assert len(second.prompts) == 2  # only the unfinished turns ran on the new server


def test_ctrl_c_stops_cleanly_and_the_run_resumes(cli, db_url, searxng, late_web):
    web = late_web
    with FakeSGLang(fallback=model(web, {1: 60.0})) as sglang:
        env = fake_env(sglang, searxng, web)
        proc = start_research(db_url, env, "ctrlc")
        wait_for(lambda: len(sglang.prompts) >= 2, "the second model call")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "fathom resume ctrlc" in stderr.strip().splitlines()[-1]
        [row] = [json.loads(line) for line in cli("runs", "list", "--json").stdout.splitlines()]
        assert row["status"] == "interrupted"
        sglang.fallback = model(web, {})
        resumed = cli("resume", "ctrlc", env=env)
    assert resumed.returncode == 0 and resumed.stdout == "1897\n"
    assert resumed.stderr.startswith("resuming run ctrlc: " + QUESTION), resumed.stderr
