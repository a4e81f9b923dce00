"""``fathom mcp``: serve Fathom to MCP clients (Claude Desktop, IDEs, other agents).

The MCP SDK and the server are imported when the command runs: ``fathom --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fathom.aio import run_own_loop
from fathom.cli.options import DbUrl, load_settings, stderr

DEFAULT_PORT = 8910


def mcp(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")] = False,
    host: Annotated[str, typer.Option("--host", help="Address to bind with --http (another than loopback exposes your runs and model servers to that network)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port with --http")] = DEFAULT_PORT,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings (as for 'fathom research'); env vars override it [default none]")] = None,
    db: DbUrl = None,
) -> None:
    """Serve Fathom over the Model Context Protocol: tools research, resume, list_runs and get_run,
    and each run's report as the resource fathom://runs/{run_id}/report.

    Speaks MCP on stdin/stdout (what Claude Desktop starts), or streamable HTTP with --http.
    Settings come from the environment and --config, as for 'fathom research'; runs are recorded
    in the same database, so 'fathom runs' lists them and 'fathom resume' continues them.
    """

    flags = {"db_url": db}
    settings = load_settings(flags, config)
    from fathom.mcp.server import build_server, serve_http, serve_stdio

    server = build_server(settings, flags=flags, config_file=config)
    try:
        if http:
            def ready(url: str) -> None:
                stderr().print(f"fathom mcp: serving MCP at {url}")

            run_own_loop(serve_http(server, host=host, port=port, on_ready=ready))
        else:
            run_own_loop(serve_stdio(server))
    except KeyboardInterrupt:  # the usual way to stop a server
        pass
