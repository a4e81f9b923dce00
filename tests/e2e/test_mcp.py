"""``fathom mcp`` driven by the MCP SDK's own client, over stdio and streamable HTTP, against the
fake model, search API and web on 127.0.0.1; and ``--search-backend mcp`` with a fake MCP search
server. Runs land in the same registry as the CLI's."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import call, cli_env, fake_env, research_script
from tests.fakes.mcp_search import McpSearchHttp, calls, stdio_command, write_hits
from tests.fakes.server import free_port
from tests.fakes.sglang import FakeSGLang, Reply
from tests.fakes.synthesizer import synthesizer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "When did the Kestrel Bridge open?"


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


@asynccontextmanager
async def fathom_stdio(env: dict[str, str], log: Path) -> AsyncIterator[Client]:
    """``fathom mcp`` as Claude Desktop starts it: a subprocess speaking MCP on stdin/stdout."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "fathom", "mcp"], env=env, cwd=ROOT)
    with log.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield client


@asynccontextmanager
async def fathom_http(env: dict[str, str], log: Path) -> AsyncIterator[Client]:
    """``fathom mcp --http`` on a free loopback port; stopped by its PID."""
    port = free_port()
    with log.open("w") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "fathom", "mcp", "--http", "--port", str(port)],
                                env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog)
    try:
        deadline = time.monotonic() + 60
        while "serving MCP at" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "fathom mcp --http did not start"
            await asyncio.sleep(0.1)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def fathom(transport: str, env: dict[str, str], log: Path) -> Any:
    return fathom_stdio(env, log) if transport == "stdio" else fathom_http(env, log)


class Progress:
    """A progress callback that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.values: list[float] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)
        self.messages.append(message or "")


async def test_research_over_stdio_answers_with_sources_progress_and_a_recorded_run(sglang, searxng, web, db_url, tmp_path, cli):
    sglang.add(*research_script(web))
    env = cli_env(db_url, fake_env(sglang, searxng, web))
    progress = Progress()
    async with fathom_stdio(env, tmp_path / "server.log") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"research", "resume", "list_runs", "get_run"} <= tools
        result = structured(await client.call_tool("research", {"question": QUESTION}, progress_callback=progress))
        run_id = result["run_id"]
        assert result["status"] == "answered" and result["answer"] == "1897"
        assert {s["url"] for s in result["sources"]} == {web.url("/article"), web.url("/news/tram")}
        assert result["report_uri"] is None  # no deepresearch, no report

        listed = structured(await client.call_tool("list_runs", {}))["runs"]
        assert [(r["run_id"], r["status"], r["answer"]) for r in listed] == [(run_id, "answered", "1897")]
        shown = structured(await client.call_tool("get_run", {"run_id": run_id}))
        assert shown["answer"] == "1897" and shown["question"] == QUESTION and shown["rounds"] == 3
        missing = await client.call_tool("get_run", {"run_id": "no-such-run"})
        assert missing.is_error and "no-such-run" in missing.content[0].text

    # The run id came first, then the rounds and tool calls, in increasing progress values.
    assert progress.messages[0] == f"run {run_id}"
    assert {"round 1", "round 2", "round 3"} <= set(progress.messages)
    assert "search_urls Kestrel Bridge opening" in progress.messages
    assert f"query_url {web.url('/article')}" in progress.messages
    assert progress.values == sorted(set(progress.values))
    # The same registry as the CLI's.
    listing = cli("runs", "list", "--json")
    assert [json.loads(line)["run_id"] for line in listing.stdout.splitlines()] == [run_id]


def slow_first_turn(web) -> tuple[Callable[[str], Reply], dict[str, int]]:
    """The search model as a function of its transcript; its very first turn takes a minute."""
    seen_calls = {"first": 0}

    def reply(prompt: str) -> Reply:
        results = prompt.count("<tool_response>")
        if results == 0:
            seen_calls["first"] += 1
            text = "Search first.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening")
            return Reply(text, delay_s=60.0 if seen_calls["first"] == 1 else 0.0)
        if results == 1:
            return Reply("Read it.</think>\n\n" + call("query_url", url=web.url("/article"), goal="When did it open?"))
        return Reply("It says 1897.</think>\n\nIt opened in \\boxed{1897}.")

    return reply, seen_calls


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_cancelled_research_is_interrupted_and_resume_finishes_it(transport, searxng, web, db_url, tmp_path, cli):
    reply, seen = slow_first_turn(web)
    with FakeSGLang(fallback=reply) as sglang:
        env = cli_env(db_url, fake_env(sglang, searxng, web))
        async with fathom(transport, env, tmp_path / "server.log") as client:
            progress = Progress()
            pending = asyncio.create_task(
                client.call_tool("research", {"question": QUESTION, "run_id": "cancelled"}, progress_callback=progress))
            deadline = time.monotonic() + 60
            while not sglang.prompts:  # the model is working on the first turn
                assert time.monotonic() < deadline and not pending.done(), "the run did not reach the model"
                await asyncio.sleep(0.05)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            assert progress.messages[:1] == ["run cancelled"]

            deadline = time.monotonic() + 60
            while (status := structured(await client.call_tool("get_run", {"run_id": "cancelled"}))["status"]) == "running":
                assert time.monotonic() < deadline, "the cancelled run was never recorded as stopped"
                await asyncio.sleep(0.1)
            assert status == "interrupted"

            resumed = Progress()
            result = structured(await client.call_tool("resume", {"run_id": "cancelled"}, progress_callback=resumed))
            assert result["status"] == "answered" and result["answer"] == "1897"
            assert [s["url"] for s in result["sources"]] == [web.url("/article")]
            assert "resuming run cancelled" in resumed.messages
            assert seen["first"] == 2  # the cut-off turn ran again, and only it
    listing = [json.loads(line) for line in cli("runs", "list", "--json").stdout.splitlines()]
    assert [(r["run_id"], r["status"]) for r in listing] == [("cancelled", "answered")]


async def test_deepresearch_report_is_a_markdown_resource(sglang, searxng, web, db_url, tmp_path):
    sglang.add(*research_script(web))
    with FakeSGLang(fallback=synthesizer(web), model_path="FractalAIResearch/Fathom-Synthesizer-4B") as synth:
        env = cli_env(db_url, {**fake_env(sglang, searxng, web), "FATHOM_SYNTH_MODEL_URL": synth.url})
        async with fathom_http(env, tmp_path / "server.log") as client:
            result = structured(await client.call_tool(
                "research", {"question": QUESTION, "deepresearch": True, "include_report": True}))
            assert result["status"] == "answered"
            uri = result["report_uri"]
            assert uri == f"fathom://runs/{result['run_id']}/report"
            read = await client.read_resource(uri)
            markdown = read.contents[0].text
            assert markdown.startswith(f"# {QUESTION}") and "14 June 1897" in markdown
            assert web.url("/article") in markdown and "invented.example" not in markdown.split("## Sources")[0]
            assert result["report"] == markdown
            with pytest.raises(Exception, match="no-such-run"):
                await client.read_resource("fathom://runs/no-such-run/report")


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_research_with_an_mcp_search_backend(transport, web, db_url, tmp_path, cli):
    """An MCP server's search tool supplies the hits; Fathom reads the pages, and its SSRF guard
    refuses a hit on a loopback port that is not allowed."""
    internal = f"http://127.0.0.1:{free_port()}/admin"
    hits = write_hits(tmp_path / "hits.json", [
        {"title": "Kestrel Bridge – History", "url": web.url("/article"), "snippet": "Opened in 1897."},
        {"title": "Admin console", "url": internal, "snippet": "internal"},
    ])
    log = tmp_path / "calls.jsonl"
    script = [
        "Search.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening"),
        "Read both.</think>\n\n" + call("query_url", url=web.url("/article"), goal="When did it open?")
        + "\n" + call("query_url", url=internal, goal="When did it open?"),
        "The history page says 1897.</think>\n\nIt opened in \\boxed{1897}.",
    ]
    with FakeSGLang(script) as sglang:
        env = {"FATHOM_SEARCH_MODEL_URL": sglang.url, "FATHOM_ALLOW_HOSTS": web.hostport, "FATHOM_VERIFY": "false"}
        flags = ["--search-backend", "mcp", "--mcp-tool", "web_search", "--quiet", "--json"]
        if transport == "stdio":
            result = cli("research", *flags, "--mcp-server", stdio_command(hits, log), QUESTION, env=env, timeout=120)
        else:
            with McpSearchHttp(hits, log) as server:
                result = cli("research", *flags, "--mcp-server", server.url, QUESTION, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["answer"] == "1897"
    assert calls(log) == [{"tool": "web_search", "arguments": {"query": "Kestrel Bridge opening", "max_results": 10}}]
    # The search results reached the model; the internal URL was refused by the read path.
    assert internal in sglang.prompts[1] and "Admin console" in sglang.prompts[1]
    assert [c["ok"] for c in summary["tool_calls"]] == [True, True, False]
    assert web.hits["/article"] == 1
    refused = sglang.prompts[2].split("<tool_response>")[-1]
    assert f"could not fetch {internal}: refused: 127.0.0.1 is a loopback address" in refused
    assert [s["url"] for s in summary["sources"]].count(internal) <= 1  # a hit, never a page read


def test_mcp_backend_without_a_server_is_a_one_line_usage_error(cli, sglang):
    result = cli("research", "--search-backend", "mcp", "--quiet", QUESTION, env={"FATHOM_SEARCH_MODEL_URL": sglang.url})
    assert result.returncode == 2
    assert result.stderr.startswith("fathom: error:") and "--mcp-server" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
