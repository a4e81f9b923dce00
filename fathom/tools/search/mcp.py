"""A search tool of another MCP server as Fathom's search backend (``--search-backend mcp``).

``server`` is a command line (the server runs as our subprocess and speaks MCP over its stdin and
stdout) or an ``http(s)://`` URL (streamable HTTP). The named tool is called with the query (and
the number of results, when its input schema has a field for it); what it returns is read as
search hits: a JSON list of ``{url, title, snippet}`` objects in its text or structured content
(under ``results``, ``items``, ``organic`` … or nested one level down), resource links, or plain
text with one URL per block. Only the hits come from the server: pages are still read by
Fathom's own fetcher, whose SSRF guard checks every URL a tool returns.

The connection is opened on the first search and held by one task of its own (the SDK's
transports are anyio contexts that must be left by the task that entered them); ``aclose``
ends that task, which closes the session and stops the subprocess (its whole process group, by
its PID, as the SDK's stdio transport does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fathom.errors import one_line
from fathom.tools.base import SearchHit, ToolError
from fathom.tools.search.results import dedupe_hits, make_hit

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult, Tool

log = logging.getLogger(__name__)

# Argument names search tools use for the query and for the number of results, most common first.
QUERY_FIELDS = ("query", "q", "search_query", "searchQuery", "search_term", "searchTerm", "keywords", "text", "input")
COUNT_FIELDS = ("max_results", "maxResults", "num_results", "numResults", "top_k", "topK", "limit", "count", "num",
                "n", "k", "size")
# Where result lists sit in the JSON of common search tools, and the names of a hit's fields.
LIST_KEYS = ("results", "items", "organic", "organic_results", "hits", "web", "data", "documents", "sources",
             "search_results", "result", "value")
URL_KEYS = ("url", "link", "href", "uri", "source_url", "source")
TITLE_KEYS = ("title", "name", "headline")
SNIPPET_KEYS = ("snippet", "content", "description", "body", "text", "summary", "abstract", "highlights")
_URL = re.compile(r"https?://[^\s<>()\[\]{}\"'`]+")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_LABEL = re.compile(r"^\s*(?:[-*]\s*)?\**(title|url|link|source|snippet|description|content|summary)\**\s*:\s*", re.I)


def is_url(server: str) -> bool:
    return server.strip().lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class _Connection:
    client: Client
    tool: str
    query_field: str
    count_field: str | None
    count_max: int | None

    def arguments(self, query: str, top_k: int) -> dict[str, Any]:
        args: dict[str, Any] = {self.query_field: query}
        if self.count_field is not None:
            args[self.count_field] = min(top_k, self.count_max) if self.count_max else top_k
        return args


class McpSearchBackend:
    """The search tool ``tool`` of the MCP server ``server`` (a command line or an http(s) URL).

    ``tool`` None picks the server's only tool, or its only tool whose name contains "search".
    ``env``: the subprocess's environment (a stdio server; default the SDK's minimal one).

    Raises:
        ToolError: ``server`` is empty, cannot be parsed as a command line, or names a program
            that is not on the PATH.
    """

    name = "mcp"  # per instance: "mcp:" and a digest of server and tool (see __init__)

    def __init__(
        self,
        server: str,
        *,
        tool: str | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        server = (server or "").strip()
        if not server:
            raise ToolError("the mcp search backend needs a server: set --mcp-server / FATHOM_MCP_SERVER "
                            "to a command line or an http(s) URL")
        self.server = server
        self.tool = (tool or "").strip() or None
        # Cached searches are keyed by the backend's name: one server's hits must not answer another's.
        self.name = "mcp:" + hashlib.sha256(f"{server}\0{self.tool or ''}".encode()).hexdigest()[:12]
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._argv: list[str] = []
        if not is_url(server):
            try:
                self._argv = shlex.split(server)
            except ValueError as exc:
                raise ToolError(f"--mcp-server {server!r} is not a command line: {exc}") from None
            if shutil.which(self._argv[0]) is None:
                raise ToolError(f"--mcp-server: {self._argv[0]!r} is not a program on the PATH")
        self._env = env
        self._lock = asyncio.Lock()
        self._connection: _Connection | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None

    # ---- searching ----------------------------------------------------------------------------

    async def search(self, query: str, top_k: int) -> list[SearchHit]:
        from mcp import MCPError

        connection = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await connection.client.call_tool(connection.tool, connection.arguments(query, top_k))
        except TimeoutError:
            raise ToolError(f"the MCP tool {connection.tool!r} did not answer in {self.timeout_s:g} s") from None
        except MCPError as exc:
            raise ToolError(f"the MCP tool {connection.tool!r} failed: {one_line(exc, 200)}") from None
        except Exception as exc:  # the connection broke: reconnect on the next search
            await self._drop()
            raise ToolError(f"the MCP server {self._label()} failed: {_reason(exc)}") from None
        return dedupe_hits(hits_from_result(result, connection.tool), top_k)

    # ---- the connection -------------------------------------------------------------------------

    async def _connect(self) -> _Connection:
        async with self._lock:
            if self._connection is not None and self._owner is not None and not self._owner.done():
                return self._connection
            await self._drop()
            ready: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
            self._closing = asyncio.Event()
            self._owner = asyncio.create_task(self._hold(ready, self._closing), name=f"mcp search {self._label()}")
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    self._connection = await asyncio.shield(ready)
            except TimeoutError:
                await self._drop()
                raise ToolError(f"the MCP server {self._label()} did not start in {self.connect_timeout_s:g} s") from None
            except ToolError:
                await self._drop()
                raise
            return self._connection

    async def _hold(self, ready: asyncio.Future[_Connection], closing: asyncio.Event) -> None:
        """Open the session, hand it over through ``ready``, and keep it until ``closing``."""
        from mcp import Client, Implementation

        try:
            async with Client(self._transport(), cache=None, client_info=Implementation(name="fathom", version="1")) as client:
                listing = await client.list_tools()
                ready.set_result(self._bind(client, listing.tools))
                await closing.wait()
        except BaseException as exc:
            leaf = _leaf(exc)
            if not ready.done():
                error = leaf if isinstance(leaf, ToolError) else ToolError(
                    f"could not connect to the MCP server {self._label()}: {_reason(exc)}")
                ready.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if not isinstance(leaf, ToolError):
                log.warning("MCP search server %s closed: %s", self._label(), _reason(exc))

    def _transport(self) -> Any:
        if is_url(self.server):
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.server)
        from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client

        params = StdioServerParameters(command=self._argv[0], args=self._argv[1:],
                                       env=self._env if self._env is not None else get_default_environment())
        return stdio_client(params, errlog=_errlog())

    def _bind(self, client: Client, tools: list[Tool]) -> _Connection:
        tool = self._pick(tools)
        schema = tool.input_schema or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        strings = [name for name, spec in properties.items() if isinstance(spec, dict) and spec.get("type") == "string"]
        required = [name for name in schema.get("required") or [] if name in strings]
        query = next((n for n in QUERY_FIELDS if n in properties), None) or (
            required[0] if len(required) == 1 else strings[0] if len(strings) == 1 else None)
        if query is None:
            raise ToolError(f"the MCP tool {tool.name!r} has no query argument Fathom recognises "
                            f"(its arguments: {', '.join(properties) or 'none'})")
        count = next((n for n in COUNT_FIELDS if n in properties
                      and (properties[n] or {}).get("type") in ("integer", "number")), None)
        maximum = (properties[count] or {}).get("maximum") if count else None
        return _Connection(client, tool.name, query, count, int(maximum) if isinstance(maximum, (int, float)) else None)

    def _pick(self, tools: list[Tool]) -> Tool:
        names = [t.name for t in tools]
        if self.tool is not None:
            for tool in tools:
                if tool.name == self.tool:
                    return tool
            raise ToolError(f"the MCP server {self._label()} has no tool {self.tool!r} "
                            f"(it has: {', '.join(names) or 'none'})")
        searching = [t for t in tools if "search" in t.name.lower()]
        if len(tools) == 1 or len(searching) == 1:
            return tools[0] if len(tools) == 1 else searching[0]
        raise ToolError(f"the MCP server {self._label()} has {len(tools)} tools: name one with --mcp-tool "
                        f"({', '.join(names) or 'none'})")

    async def _drop(self) -> None:
        """End the owner task (closing the session and stopping the subprocess) and forget it."""
        owner, closing = self._owner, self._closing
        self._connection = self._owner = self._closing = None
        if owner is None:
            return
        if closing is not None:
            closing.set()
        # the stdio transport waits up to a few seconds for the server to exit, then kills it
        done, _ = await asyncio.wait([owner], timeout=15.0)
        if not done:
            owner.cancel()
            with contextlib.suppress(BaseException):
                await owner

    def _label(self) -> str:
        return repr(self.server if is_url(self.server) else os.path.basename(self._argv[0]))

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()


def _errlog() -> Any:
    """Where the subprocess's stderr goes: ours when it is a real file, else nowhere."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a capture object (pytest)
        return subprocess.DEVNULL
    return sys.stderr


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _reason(exc: BaseException) -> str:
    leaf = _leaf(exc)
    return one_line(leaf, 200) or type(leaf).__name__


# ---- reading a tool's result as hits ------------------------------------------------------------


def hits_from_result(result: CallToolResult, tool: str = "search") -> list[SearchHit]:
    """The search hits in an MCP tool result (see the module docstring for the shapes read).

    Raises:
        ToolError: the tool reported an error, or returned something without a readable result
            list (the message quotes the start of it, for the model and the user).
    """
    texts = [block.text for block in result.content if getattr(block, "type", "") == "text"]
    if result.is_error:
        raise ToolError(f"the MCP tool {tool!r} reported an error: {one_line(' '.join(texts), 300) or 'no details'}")
    hits: list[SearchHit] = []
    found = False
    if result.structured_content is not None:
        items = _find_items(result.structured_content)
        if items is not None:
            found, hits = True, _hits(items)
    for block in result.content if not found else []:
        kind = getattr(block, "type", "")
        if kind == "resource_link" and is_url(str(block.uri)):
            found = True
            hits.append(make_hit(block.title or block.name, str(block.uri), block.description))
        elif kind == "resource" and is_url(str(block.resource.uri)):
            found = True
            hits.append(make_hit("", str(block.resource.uri), getattr(block.resource, "text", "")))
        elif kind == "text":
            items = _find_items(_json(block.text))
            text_hits = _hits(items) if items is not None else _text_hits(block.text)
            found = found or items is not None or bool(text_hits)
            hits.extend(text_hits)
    if not found and (texts or result.content or result.structured_content):
        shown = one_line(" ".join(texts) if texts else json.dumps(result.structured_content, default=str), 160)
        raise ToolError(f"the MCP tool {tool!r} returned no search results Fathom can read (expected a list of "
                        f"url/title/snippet objects); it returned: {shown or 'no text'}")
    return hits


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _find_items(data: Any, depth: int = 0) -> list[Any] | None:
    """The list of results in ``data``: itself, a known key's value, or one found one level down."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict) or depth > 2:
        return None
    if _pick_key(data, URL_KEYS):  # a single hit
        return [data]
    for key in LIST_KEYS:
        if key in data and (items := _find_items(data[key], depth + 1)) is not None:
            return items
    for value in data.values():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return value
    return None


def _hits(items: list[Any]) -> list[SearchHit]:
    hits = []
    for item in items:
        if isinstance(item, str) and is_url(item):
            hits.append(make_hit("", item, ""))
        elif isinstance(item, dict) and (url := _pick_key(item, URL_KEYS)):
            snippet = _pick_key(item, SNIPPET_KEYS)
            if isinstance(snippet, list):  # highlights: a list of passages
                snippet = " … ".join(str(s) for s in snippet)
            hits.append(make_hit(_pick_key(item, TITLE_KEYS), url, snippet))
    return hits


def _pick_key(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = item.get(key)
        if value and (key not in URL_KEYS or (isinstance(value, str) and is_url(value))):
            return value
    return None


def _text_hits(text: str) -> list[SearchHit]:
    """Hits in plain text: each block (blank-line or ``---`` separated) with a URL is one hit;
    its title is a Markdown link's text, a ``Title:`` line or the first line."""
    hits = []
    for block in re.split(r"\n\s*(?:-{3,}\s*)?\n", text):
        match = _MD_LINK.search(block) or _URL.search(block)
        if match is None:
            continue
        url = match.group(2) if match.re is _MD_LINK else match.group(0)
        url = url.rstrip(".,;:")
        title = match.group(1) if match.re is _MD_LINK else ""
        rest = []
        for line in block.strip().splitlines():
            label = _LABEL.match(line)
            value = line[label.end():] if label else line
            if label and label.group(1).lower() == "title" and not title:
                title = value
            elif url in line or (label and label.group(1).lower() in ("url", "link", "source")):
                continue
            elif not title:
                title = value.lstrip("#0123456789. ")
            else:
                rest.append(value)
        hits.append(make_hit(title, url, " ".join(rest)))
    return hits
