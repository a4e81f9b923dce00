"""The MCP server's tools and report resource, driven in-process by the SDK's client, on a real
SQLite run database; and how progress events read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp import Client, MCPError

from fathom.mcp.server import build_server, describe
from fathom.settings import Settings
from fathom.store import open_store


@asynccontextmanager
async def connected(db_url: str) -> AsyncIterator[Client]:
    """The server in-process (the SDK's client enters anyio scopes: one task for both ends)."""
    async with open_store(db_url) as store:
        await store.runs.create("done1", "When did the Kestrel Bridge open?")
        await store.runs.update("done1", status="answered", rounds=3, answer="1897")
        await store.runs.create("stopped", "Who built it?")
        await store.runs.update("stopped", status="interrupted")
    settings = Settings.load({"db_url": db_url}, environ={})
    async with Client(build_server(settings)) as client:
        yield client


async def test_list_runs_newest_first_and_by_status(db_url):
    async with connected(db_url) as client:
        runs = (await client.call_tool("list_runs", {})).structured_content["runs"]
        assert [(r["run_id"], r["status"], r["answer"]) for r in runs] == [("stopped", "interrupted", None),
                                                                           ("done1", "answered", "1897")]
        only = (await client.call_tool("list_runs", {"status": "answered"})).structured_content["runs"]
        assert [r["run_id"] for r in only] == ["done1"]
        bad = await client.call_tool("list_runs", {"status": "finished"})
        assert bad.is_error and "status must be one of running, waiting, interrupted, answered, unanswered, failed" in bad.content[0].text


async def test_get_run_reads_the_registry_when_the_run_has_no_checkpoint(db_url):
    async with connected(db_url) as client:
        run = (await client.call_tool("get_run", {"run_id": "done1"})).structured_content
        assert (run["question"], run["status"], run["answer"], run["report_uri"]) == (
            "When did the Kestrel Bridge open?", "answered", "1897", None)
        missing = await client.call_tool("get_run", {"run_id": "nope"})
        assert missing.is_error and "no run 'nope'" in missing.content[0].text


async def test_resuming_an_unknown_run_or_researching_nothing_is_a_tool_error(db_url):
    async with connected(db_url) as client:
        unknown = await client.call_tool("resume", {"run_id": "nope"})
        assert unknown.is_error and "no run 'nope'" in unknown.content[0].text
        empty = await client.call_tool("research", {"question": "   "})
        assert empty.is_error and "the question is empty" in empty.content[0].text


async def test_the_report_resource_of_a_run_without_a_report_says_so(db_url):
    async with connected(db_url) as client:
        with pytest.raises(MCPError, match="run done1 has no report"):
            await client.read_resource("fathom://runs/done1/report")
        with pytest.raises(MCPError, match="no run 'nope'"):
            await client.read_resource("fathom://runs/nope/report")
        templates = (await client.list_resource_templates()).resource_templates
        assert [(t.uri_template, t.mime_type) for t in templates] == [("fathom://runs/{run_id}/report", "text/markdown")]


async def test_tools_describe_themselves_for_the_calling_model(db_url):
    async with connected(db_url) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"research", "resume", "list_runs", "get_run"}
        research = tools["research"]
        assert "run id" in research.description and research.input_schema["required"] == ["question"]
        assert research.input_schema["properties"]["question"]["description"]
        assert set(research.output_schema["properties"]) >= {"run_id", "status", "answer", "sources", "report_uri"}


@pytest.mark.parametrize(
    ("event", "line"),
    [
        ({"event": "turn", "round": 2}, "round 2"),
        ({"event": "turn", "round": 9, "forced": "rounds"}, "round 9 (answer forced)"),
        ({"event": "tool_start", "name": "search_urls", "args": {"query": "kestrel  bridge\nopening"}},
         "search_urls kestrel bridge opening"),
        ({"event": "tool_start", "name": "query_url", "args": {"url": "https://x.example/a", "goal": "g"}},
         "query_url https://x.example/a"),
        ({"event": "tool_end", "name": "query_url", "ok": False}, "query_url failed"),
        ({"event": "tool_end", "name": "query_url", "ok": True}, None),
        ({"event": "model", "answer": "1897"}, "answer: 1897"),
        ({"event": "model", "answer": None}, None),
        ({"event": "verify", "accepted": False}, "answer sent back for more research"),
        ({"event": "write_start"}, "writing the report"),
        ({"event": "model_wait", "model": "search model", "url": "http://127.0.0.1:8902", "waited_s": 30.0},
         "still waiting for the search model at http://127.0.0.1:8902 (30 s)"),
        ({"event": "fold", "results": 24, "before": 30600, "after": 9100}, "folded 24 older tool results into digests"),
        ({"event": "something_new"}, None),
    ],
)
def test_progress_lines(event, line):
    assert describe(event) == line
