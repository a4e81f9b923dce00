"""An MCP server's search tool as a search backend: result shapes read, errors in words, and the
server process started on the first search and stopped by ``aclose``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp.types import CallToolResult, EmbeddedResource, ResourceLink, TextContent, TextResourceContents

from fathom.app.services import make_search_backend
from fathom.errors import ConfigError
from fathom.settings import Settings, child_environment
from fathom.tools.base import ToolError
from fathom.tools.search.mcp import McpSearchBackend, hits_from_result
from tests.fakes.mcp_search import McpSearchHttp, calls, stdio_command, write_hits

HITS = [
    {"title": "Kestrel Bridge – History", "url": "https://heritage.example/kestrel", "snippet": "Opened in 1897."},
    {"title": "Tram news", "url": "https://news.example/tram", "snippet": "Trams crossed it."},
]


def text(value: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=value)])


def urls(result: CallToolResult) -> list[str]:
    return [hit["url"] for hit in hits_from_result(result)]


@pytest.mark.parametrize(
    "result",
    [
        text(json.dumps(HITS)),
        text(json.dumps({"results": HITS})),
        text(json.dumps({"web": {"results": [{"title": h["title"], "link": h["url"], "description": h["snippet"]}
                                              for h in HITS]}})),
        text(json.dumps({"data": [{"name": h["title"], "href": h["url"], "content": h["snippet"]} for h in HITS]})),
        CallToolResult(content=[], structured_content={"items": HITS}),
        CallToolResult(content=[TextContent(type="text", text="[]")], structured_content={"result": HITS}),
        CallToolResult(content=[ResourceLink(type="resource_link", name=h["title"], uri=h["url"],
                                             description=h["snippet"]) for h in HITS]),
        text("\n\n".join(f"Title: {h['title']}\nURL: {h['url']}\n{h['snippet']}" for h in HITS)),
        text("\n---\n".join(f"{i}. [{h['title']}]({h['url']})\n{h['snippet']}" for i, h in enumerate(HITS, 1))),
        text(json.dumps({"results": [{"title": h["title"], "url": h["url"], "highlights": [h["snippet"]]}
                                     for h in HITS]})),
    ],
    ids=["list", "results", "nested-web", "data-href", "structured", "structured-wrapped", "resource-links",
         "labelled-text", "markdown-links", "highlights"],
)
def test_common_result_shapes_become_hits(result):
    hits = hits_from_result(result)
    assert [h["url"] for h in hits] == [h["url"] for h in HITS]
    assert hits[0]["title"] == "Kestrel Bridge – History"
    assert hits[0]["snippet"] == "Opened in 1897."


def test_an_embedded_text_resource_is_a_hit():
    block = EmbeddedResource(type="resource", resource=TextResourceContents(uri=HITS[0]["url"], text="Opened in 1897."))
    assert hits_from_result(CallToolResult(content=[block])) == [
        {"title": "", "url": HITS[0]["url"], "snippet": "Opened in 1897."}]


def test_an_empty_list_is_no_results_not_an_error():
    assert hits_from_result(text('{"results": []}')) == []
    assert hits_from_result(CallToolResult(content=[])) == []


def test_non_web_urls_are_read_but_left_for_the_toolbox_to_drop():
    hits = hits_from_result(text(json.dumps([{"url": "file:///etc/passwd", "title": "x"}, HITS[0]])))
    assert [h["url"] for h in hits] == [HITS[0]["url"]]  # a url field must be an http(s) URL


@pytest.mark.parametrize(
    ("result", "words"),
    [
        (text("the index is warming up"), "returned no search results Fathom can read"),
        (text('{"status": "ok"}'), 'it returned: {"status": "ok"}'),
        (CallToolResult(content=[], structured_content={"status": "ok"}), "no search results"),
        (CallToolResult(content=[TextContent(type="text", text="quota exhausted")], is_error=True),
         "reported an error: quota exhausted"),
    ],
)
def test_an_unreadable_or_failed_result_is_a_clear_tool_error(result, words):
    with pytest.raises(ToolError, match="the MCP tool 'search'") as caught:
        hits_from_result(result)
    assert words in str(caught.value)


def alive_with(marker: str) -> list[int]:
    """PIDs of live processes whose command line mentions ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(pid))
    return found


@pytest.fixture
def hits_file(tmp_path) -> Path:
    return write_hits(tmp_path / "hits.json", HITS)


async def test_stdio_server_is_started_on_first_search_and_stopped_by_aclose(hits_file, tmp_path):
    log = tmp_path / "calls.jsonl"
    backend = McpSearchBackend(stdio_command(hits_file, log), tool="web_search")
    assert alive_with(str(hits_file)) == []  # nothing runs before the first search
    try:
        assert [h["url"] for h in await backend.search("kestrel bridge", 1)] == [HITS[0]["url"]]
        assert len(await backend.search("tram", 5)) == 2
        assert len(alive_with(str(hits_file))) == 1  # one server for both searches
    finally:
        await backend.aclose()
    assert alive_with(str(hits_file)) == []
    assert calls(log) == [
        {"tool": "web_search", "arguments": {"query": "kestrel bridge", "max_results": 1}},
        {"tool": "web_search", "arguments": {"query": "tram", "max_results": 5}},
    ]


@pytest.mark.parametrize(
    ("tool", "words"),
    [
        ("failing_search", "reported an error: Error executing tool failing_search: quota exhausted for today"),
        ("broken_search", "it returned: the index is warming up"),
        ("no_such_tool", "has no tool 'no_such_tool' (it has: web_search, structured_search, text_search"),
        (None, "has 5 tools: name one with --mcp-tool"),
    ],
)
async def test_server_side_problems_are_tool_errors(hits_file, tool, words):
    backend = McpSearchBackend(stdio_command(hits_file), tool=tool)
    try:
        with pytest.raises(ToolError) as caught:
            await backend.search("kestrel", 3)
        assert words in str(caught.value)
    finally:
        await backend.aclose()
    assert alive_with(str(hits_file)) == []


async def test_streamable_http_server(hits_file, tmp_path):
    log = tmp_path / "calls.jsonl"
    with McpSearchHttp(hits_file, log) as server:
        backend = McpSearchBackend(server.url, tool="structured_search")
        try:
            hits = await backend.search("kestrel", 1)
        finally:
            await backend.aclose()
    assert hits == [HITS[0]]  # top_k applies even when the tool has no count argument
    assert calls(log) == [{"tool": "structured_search", "arguments": {"query": "kestrel"}}]


async def test_an_unreachable_http_server_is_a_tool_error():
    from tests.fakes.server import free_port

    backend = McpSearchBackend(f"http://127.0.0.1:{free_port()}/mcp", connect_timeout_s=20)
    try:
        with pytest.raises(ToolError, match="could not connect to the MCP server 'http://127.0.0.1:"):
            await backend.search("kestrel", 3)
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("server", "words"),
    [("", "needs a server: set --mcp-server / FATHOM_MCP_SERVER"),
     ("no-such-program-xyz --stdio", "'no-such-program-xyz' is not a program on the PATH"),
     ("python 'unbalanced", "is not a command line")],
)
def test_a_server_that_cannot_work_is_a_config_error_at_once(server, words):
    settings = Settings.load({"search_backend": "mcp", "mcp_server": server or None}, environ={})
    with pytest.raises(ConfigError, match="mcp") as caught:
        make_search_backend(settings)
    assert words in str(caught.value)


def test_each_server_and_tool_has_its_own_cache_name():
    names = {McpSearchBackend(server, tool=tool).name
             for server, tool in [("http://127.0.0.1:1/mcp", None), ("http://127.0.0.1:1/mcp", "web_search"),
                                  ("http://127.0.0.1:2/mcp", "web_search")]}
    assert len(names) == 3 and all(name.startswith("mcp:") and len(name) <= 32 for name in names)
    assert McpSearchBackend("http://127.0.0.1:1/mcp").name == McpSearchBackend(" http://127.0.0.1:1/mcp ").name


def test_settings_come_from_the_environment_and_the_server_gets_no_fathom_keys():
    settings = Settings.load(environ={"FATHOM_SEARCH_BACKEND": "mcp", "FATHOM_MCP_SERVER": "npx search-server",
                                      "FATHOM_MCP_TOOL": "web_search"})
    assert (settings.resolved_search_backend, settings.mcp_server, settings.mcp_tool) == (
        "mcp", "npx search-server", "web_search")
    env = child_environment({"PATH": "/bin", "TAVILY_API_KEY": "t", "OPENAI_API_KEY": "o",
                             "FATHOM_DB_URL": "postgresql://u:pw@h/db", "BRAVE_API_KEY": "b"})
    assert env == {"PATH": "/bin", "BRAVE_API_KEY": "b"}
