"""The fault suite, small: each fault the issue names, against the loopback fakes and real databases.

A fault must end in one of two ways: the run goes on (a retry, or a clear tool error the model
reads), or the run stops ``interrupted`` with one clear line and ``fathom resume`` finishes it.
Either way no tool call runs twice. ``bench/faults.py`` runs the full sizes (30 questions with
random model faults, 32 concurrent runs, SIGKILLs at random moments) and prints the figures.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fathom.app.runs import load_state, run_config
from fathom.store import open_store
from fathom.store.checkpoints.testing import scratch_database
from tests.conftest import cli_env, fake_env, fake_settings
from tests.fakes.sglang import FakeSGLang, Reply
from tests.support.checkpoints import server
from tests.support.faults import add_pages, question, repeated_tool_calls, run_questions, search_model, year


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty run database: SQLite, and PostgreSQL when reachable (skipped with the reason)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    with scratch_database(server("postgresql")) as url:
        yield url


# ---- model server ----------------------------------------------------------------------------


async def test_model_server_faults_are_retried_or_resumed_and_no_tool_call_runs_twice(web, searxng, sqlite_url):
    add_pages(web, 4)
    with FakeSGLang(fallback=search_model(web)) as sglang:
        settings = fake_settings(sglang, searxng, web, db_url=sqlite_url, no_cache=True, model_retries=2,
                                 model_timeout_s=1.0)
        sglang.fail_next(1, 503)  # three runs at once: one 503, one request left hanging, one answer cut
        sglang.fail_next(1, "hang")
        sglang.fail_next(1, "drop")
        first = await run_questions(settings, [0, 1, 2])
        assert dict(sglang.injected) == {"503": 1, "hang": 1, "drop": 1}
        sglang.fail_next(3, 503)  # more failures in a row than retries: the run stops, resumable
        [stopped] = await run_questions(settings, [3])

    assert [(o.first_status, o.status, o.answer) for o in first] == [("answered", "answered", year(i)) for i in range(3)]
    assert (stopped.first_status, stopped.resumes, stopped.status, stopped.answer) == ("stopped", 1, "answered", year(3))
    [error] = stopped.errors
    assert f"search model server at {sglang.url} is unreachable after 3 attempts: HTTP 503" in error
    for outcome in [*first, stopped]:
        assert [c["name"] for c in outcome.tool_calls] == ["search_urls", "query_url", "query_url"]
    assert repeated_tool_calls(web, searxng, [0, 1, 2, 3]) == {}


# ---- web -------------------------------------------------------------------------------------

WEB_FAULTS = {  # path: what the model reads (a clear error, or the part of the page that fits)
    "/slow": "[error] could not fetch {url}: timed out after 1 s",
    "/endless": "[error] could not fetch {url}: timed out after 1 s",
    "/download": "[error] could not read {url}: it is a binary file (application/octet-stream)",
    "/loop/1": "[error] could not fetch {url}: too many redirects (more than 5)",
    "/error500": "[error] could not fetch {url}: HTTP 500 Internal Server Error",
    "/dropped": "[error] could not fetch {url}: RemoteProtocolError (peer closed connection",
    "/huge": "truncated",
    "/bad-charset": " la cr",  # an unknown charset: read as UTF-8, undecodable bytes marked
}


async def test_web_faults_are_clear_tool_errors_and_the_run_goes_on(web, searxng, sglang, sqlite_url):
    add_pages(web, 1)
    sglang.fallback = search_model(web, extra_urls=lambda i: [web.url(p) for p in WEB_FAULTS])
    settings = fake_settings(sglang, searxng, web, db_url=sqlite_url, no_cache=True, fetch_timeout_s=1.0,
                             fetch_max_bytes=100_000, max_calls_per_turn=10)
    [outcome] = await run_questions(settings, [0])
    assert (outcome.status, outcome.answer) == ("answered", year(0))

    async with open_store(sqlite_url) as store:
        messages = (await load_state(store, outcome.run_id))["messages"]
    read = {m.artifact["args"]["url"]: m for m in messages if m.type == "tool" and m.name == "query_url"}
    for path, expected in WEB_FAULTS.items():
        url = web.url(path)
        assert expected.format(url=url) in read[url].content, (path, read[url].content[:300])
        assert read[url].status == ("success" if path in ("/huge", "/bad-charset") else "error"), path
    assert "opened in 1800" in read[web.url("/bridge/0/a")].content


# ---- search API ------------------------------------------------------------------------------


async def test_a_429_storm_is_waited_out_and_the_runs_go_on(web, searxng, sglang, sqlite_url):
    add_pages(web, 3)
    sglang.fallback = search_model(web)
    searxng.fail_next("rate_limit", times=4, retry_after=0.2)  # three runs, three tries each
    settings = fake_settings(sglang, searxng, web, db_url=sqlite_url, no_cache=True)
    outcomes = await run_questions(settings, [0, 1, 2])

    assert [(o.status, o.answer) for o in outcomes] == [("answered", year(i)) for i in range(3)]
    assert sum(r.get("status") == 429 for r in searxng.requests) == 4
    async with open_store(sqlite_url) as store:
        searches = [m for o in outcomes for m in (await load_state(store, o.run_id))["messages"]
                    if m.type == "tool" and m.name == "search_urls"]
    assert len(searches) == 3
    for m in searches:  # found after waiting, or (three 429s for one run) told so in one line
        assert m.status == "success" or "rate limit or quota exceeded (HTTP 429" in m.content


# ---- databases ---------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_connections_killed_mid_run_lose_nothing(web, searxng):
    import psycopg

    add_pages(web, 2)
    slow_second_turn = search_model(web)

    def model(prompt: str) -> Reply:  # the reading turn waits, so the kill lands mid-run
        return Reply(slow_second_turn(prompt), delay_s=1.0 if prompt.count("<tool_response>") == 1 else 0.0)

    with scratch_database(server("postgresql")) as url, FakeSGLang(fallback=model) as sglang:
        settings = fake_settings(sglang, searxng, web, db_url=url, no_cache=True)
        running = asyncio.ensure_future(run_questions(settings, [0, 1]))
        while sum("<tool_response>" in p for p in sglang.prompts) < 2:  # both runs in their second turn
            await asyncio.sleep(0.02)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        outcomes = await running

    assert killed and killed[0] > 0
    assert [(o.status, o.answer) for o in outcomes] == [("answered", year(0)), ("answered", year(1))]
    for o in outcomes:  # nothing lost: every tool result is in the run's final state
        assert [c["name"] for c in o.tool_calls] == ["search_urls", "query_url", "query_url"]
    assert repeated_tool_calls(web, searxng, [0, 1]) == {}


@pytest.mark.postgres
async def test_a_run_whose_database_fails_a_write_stops_interrupted_and_resumes_with_nothing_lost(web, searxng):
    """The database refuses checkpoint writes mid-run (a trigger raising, as a full or read-only
    disk would): the run stops interrupted, not failed, and once writes work again resume ends it."""
    import psycopg

    from fathom.app.runs import research, resume
    from fathom.errors import RunStoppedByStoreError

    add_pages(web, 1)
    answer_slowly = search_model(web)

    def model(prompt: str) -> Reply:  # the answer turn waits, so the trigger lands before its checkpoint
        return Reply(answer_slowly(prompt), delay_s=1.0 if prompt.count("<tool_response>") == 3 else 0.0)

    refuse = ("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no space left on device'; "
              "END $$ LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON fathom_checkpoints "
              "FOR EACH ROW EXECUTE FUNCTION refuse()")
    with scratch_database(server("postgresql")) as url, FakeSGLang(fallback=model) as sglang:
        settings = fake_settings(sglang, searxng, web, db_url=url, no_cache=True)
        running = asyncio.ensure_future(research(question(0), settings, run_id="refused"))
        while len(sglang.prompts) < 3:  # the answer turn has started: the reads are checkpointed
            await asyncio.sleep(0.02)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(refuse)
        with pytest.raises(RunStoppedByStoreError, match="no space left on device") as stopped:
            await running
        assert stopped.value.run_id == "refused"  # the CLI names it in its 'fathom resume' hint
        async with open_store(url) as store:
            record = await store.runs.get("refused")
        assert record is not None and record.status == "interrupted"

        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP TRIGGER refuse ON fathom_checkpoints")
        summary = await resume("refused", {}, db_url=url)

    assert (summary["status"], summary["answer"]) == ("answered", year(0))
    assert [c["name"] for c in summary["tool_calls"]] == ["search_urls", "query_url", "query_url"]
    assert repeated_tool_calls(web, searxng, [0]) == {}


def _research_in_a_subprocess(db_url: str, env: dict[str, str], *, file_size_limit: int | None = None,
                              ) -> subprocess.Popen:
    def limit() -> None:  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.Popen([sys.executable, "-m", "fathom", "research", "--quiet", question(0)],
                            env=cli_env(db_url, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit)


@pytest.mark.slow
async def test_sqlite_on_a_read_only_file_or_a_full_disk_is_one_clear_error_exit_4(db_url, web, searxng, sglang):
    add_pages(web, 1)
    sglang.fallback = search_model(web)
    env = fake_env(sglang, searxng, web)
    async with open_store(db_url):
        pass  # the database exists, schema and all
    path = db_url.removeprefix("sqlite:///")

    read_only_path = path + "-read-only"
    shutil.copyfile(path, read_only_path)
    os.chmod(read_only_path, 0o444)  # root ignores the mode bits: then open it read-only as SQLite would
    ro_url = f"sqlite:///file:{read_only_path}?mode=ro&uri=true" if os.geteuid() == 0 else f"sqlite:///{read_only_path}"
    # both at once: a full disk (a file-size limit, no root needed) and a read-only file
    full = _research_in_a_subprocess(db_url, env, file_size_limit=8192)
    read_only = _research_in_a_subprocess(ro_url, env)
    for proc, path_shown, why in ((full, path, "the disk may be full"), (read_only, read_only_path, "read-only")):
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 4, stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("fathom: error:") and path_shown in last and why in last, last
    assert sglang.prompts == []  # neither got as far as asking the model


# ---- many runs at once -------------------------------------------------------------------------


async def test_concurrent_runs_in_one_process_have_no_lock_errors_and_lose_no_checkpoint(db, web, searxng, sglang):
    n = 8  # bench/faults.py: 32
    add_pages(web, n)
    sglang.fallback = search_model(web)
    settings = fake_settings(sglang, searxng, web, db_url=db, no_cache=True)
    outcomes = await run_questions(settings, list(range(n)))

    assert [(o.status, o.answer, o.errors) for o in outcomes] == [("answered", year(i), []) for i in range(n)]
    assert repeated_tool_calls(web, searxng, list(range(n))) == {}
    async with open_store(db) as store:
        counts = {len([c async for c in store.saver.alist(run_config(o.run_id))]) for o in outcomes}
        records = [await store.runs.get(o.run_id) for o in outcomes]
    assert len(counts) == 1 and counts.pop() > 0  # the same steps, every one checkpointed, in each run
    assert all(r is not None and r.status == "answered" for r in records)
