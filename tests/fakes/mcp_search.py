"""A tiny MCP server with search tools, for the tests of ``--search-backend mcp``.

Run as a script (it imports only the MCP SDK, so it needs no path set up)::

    python tests/fakes/mcp_search.py HITS.json [--log CALLS.jsonl] [--http PORT]

It speaks MCP on stdin/stdout, or streamable HTTP on 127.0.0.1:PORT/mcp with ``--http``.
``HITS.json`` is a list of ``{"title", "url", "snippet"}`` objects, served in the shapes real
search servers use, one tool per shape:

* ``web_search(query, max_results=10)``: JSON text ``{"results": [...]}`` (at most max_results);
* ``structured_search(query)``: structured content ``{"items": [{"name", "link", "description"}]}``;
* ``text_search(query)``: plain text, a ``Title:``/``URL:``/snippet block per hit;
* ``broken_search(query)``: text that holds no result list;
* ``failing_search(query)``: a tool error.

Every call is appended to the ``--log`` file as one JSON line ``{"tool": …, "arguments": …}``.
:class:`McpSearchHttp` runs the HTTP form as a subprocess for a test and stops it by its PID.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

THIS_FILE = Path(__file__).resolve()


def build(hits: list[dict[str, str]], log: Path | None) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("fake-search", log_level="WARNING")

    def record(tool: str, **arguments: Any) -> None:
        if log is not None:
            with log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")

    @server.tool(description="Search the web (fake).")
    def web_search(query: str, max_results: int = 10) -> str:
        record("web_search", query=query, max_results=max_results)
        return json.dumps({"query": query, "results": hits[:max_results]})

    @server.tool(description="Search the web, structured (fake).")
    def structured_search(query: str) -> dict[str, Any]:
        record("structured_search", query=query)
        return {"items": [{"name": h["title"], "link": h["url"], "description": h["snippet"]} for h in hits]}

    @server.tool(description="Search the web, plain text (fake).")
    def text_search(query: str) -> str:
        record("text_search", query=query)
        return "\n\n".join(f"Title: {h['title']}\nURL: {h['url']}\n{h['snippet']}" for h in hits)

    @server.tool(description="Search that answers nonsense (fake).")
    def broken_search(query: str) -> str:
        record("broken_search", query=query)
        return "the index is warming up"

    @server.tool(description="Search that fails (fake).")
    def failing_search(query: str) -> str:
        record("failing_search", query=query)
        raise ToolError("quota exhausted for today")

    return server


def write_hits(path: Path, hits: list[dict[str, str]]) -> Path:
    path.write_text(json.dumps(hits), encoding="utf-8")
    return path


def stdio_command(hits_file: Path, log: Path | None = None) -> str:
    """The ``--mcp-server`` command line that runs this server over stdio."""
    argv = [sys.executable, str(THIS_FILE), str(hits_file)] + (["--log", str(log)] if log else [])
    return shlex.join(argv)


def calls(log: Path) -> list[dict[str, Any]]:
    """The calls the server logged, in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


class McpSearchHttp:
    """This server over streamable HTTP on 127.0.0.1, as a subprocess (stopped by its PID)."""

    def __init__(self, hits_file: Path, log: Path | None = None) -> None:
        from tests.fakes.server import free_port

        self.port = free_port()
        self.argv = [sys.executable, str(THIS_FILE), str(hits_file), "--http", str(self.port)]
        self.argv += ["--log", str(log)] if log else []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> McpSearchHttp:
        import socket
        import time

        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the fake MCP search server exited ({self.proc.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("the fake MCP search server did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake MCP search server for tests")
    parser.add_argument("hits", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--http", type=int, metavar="PORT")
    args = parser.parse_args()
    server = build(json.loads(args.hits.read_text(encoding="utf-8")), args.log)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
