"""``fathom serve``: start, watch and stop the SGLang servers the agent talks to.

Only typer is imported at module level; the process management (:mod:`fathom.serving`) is
imported by the commands.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from fathom.errors import ConfigError

if TYPE_CHECKING:
    from fathom.serving.spec import ServerSpec

serve_app = typer.Typer(
    help="Start, check and stop the SGLang servers (search :8902, synth :8903, query LLM :8905).",
    no_args_is_help=True,
)

TARGETS = ("search", "synth", "query", "all")


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")


def _per_server(values: list[str] | None, flag: str, names: list[str]) -> dict[str, str]:
    """``VALUE`` (every named server) or ``NAME=VALUE`` entries -> name -> value."""
    out: dict[str, str] = {}
    for raw in values or []:
        name, sep, value = raw.partition("=")
        if sep and name in ("search", "synth", "query"):
            if name not in names:
                raise ConfigError(f"{flag} {raw!r} names a server that is not being started")
            out[name] = value
        elif len(names) == 1:
            out[names[0]] = raw
        else:
            raise ConfigError(f"{flag} {raw!r} is ambiguous with several servers: write NAME={raw}")
    return out


def _settings() -> Any:
    from fathom.settings import Settings

    return Settings.load()


def _api_key(settings: Any) -> str | None:
    key = settings.model_api_key
    return key.get_secret_value() if key is not None else None


@serve_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def start(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="search, synth, query or all (query only with its --model-path)")] = "all",
    model_path: Annotated[Optional[list[str]], typer.Option("--model-path", help="Model to serve, [NAME=]PATH; repeat for several servers [default FractalAIResearch/Fathom-Search-4B, FractalAIResearch/Fathom-Synthesizer-4B; query has none]")] = None,
    gpus: Annotated[Optional[list[str]], typer.Option("--gpus", help="CUDA_VISIBLE_DEVICES of the server, [NAME=]0,1; split evenly over replicas [default inherited for one server; with 'all' or replicas, the next block of tp x replicas GPUs per server, shared with a split --mem-fraction-static when the host has fewer]")] = None,
    tp: Annotated[Optional[int], typer.Option("--tp", help="Tensor-parallel GPUs per replica [default GPUs per replica, else 1]")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Workers per server, behind SGLang's router on the server's port")] = 1,
    port: Annotated[Optional[int], typer.Option("--port", help="Port (one server only) [default the port of --search-model-url / --synth-model-url settings; 8905 for query]")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    context_length: Annotated[Optional[int], typer.Option("--context-length", help="Context window [default search 40960, synth 81920 (YaRN x2 over 40960), query 32768]")] = None,
    mem_fraction_static: Annotated[Optional[float], typer.Option("--mem-fraction-static", help="GPU memory share for weights + KV cache (SGLang's flag)")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each server to be ready")] = 900.0,
    python: Annotated[Optional[str], typer.Option("--python", help="The Python that has sglang [env FATHOM_SGLANG_PYTHON; default this one]")] = None,
) -> None:
    """Start SGLang server(s) and wait until they serve. Arguments after -- go to SGLang as is."""
    extra = list(ctx.args)
    if target.startswith("-"):  # `serve start -- --flag`: no target before the --
        extra, target = [target, *extra], "all"
    if target not in TARGETS:
        raise ConfigError(f"unknown server {target!r}: use search, synth, query or all")
    specs = _specs(target, model_path, gpus, tp, replicas, port, host, context_length, mem_fraction_static, tuple(extra))
    from fathom.serving import manager

    settings = _settings()
    started: list[str] = []
    try:
        for spec in specs:
            manager.start(spec, python=python or settings.sglang_python or sys.executable, api_key=_api_key(settings),
                          timeout_s=timeout, say=_say)
            started.append(spec.name)
    except BaseException:
        if started:  # `all` is all or nothing: a later failure stops the earlier servers
            manager.stop(started, say=lambda _m: None)
        raise


def _specs(target: str, model_path: list[str] | None, gpus: list[str] | None, tp: int | None, replicas: int,
           port: int | None, host: str, context_length: int | None, mem: float | None,
           extra: tuple[str, ...]) -> list[ServerSpec]:
    from fathom.serving.procs import visible_gpus
    from fathom.serving.spec import SERVER_NAMES, build_spec, parse_gpus, place_gpus, port_of

    names = list(SERVER_NAMES) if target == "all" else [target]
    models = _per_server(model_path, "--model-path", names)
    if target == "all" and "query" not in models:
        names.remove("query")  # the query LLM has no default model
    if port is not None and len(names) > 1:
        raise ConfigError("--port needs one server: 'fathom serve start search --port …'")
    if context_length is not None and len(names) > 1:
        raise ConfigError("--context-length needs one server: 'fathom serve start synth --context-length …'")
    settings = _settings()
    default_ports = {"search": port_of(settings.search_model_url), "synth": port_of(settings.synth_model_url),
                     "query": port_of(settings.query_llm)}
    chosen = {name: parse_gpus(value) for name, value in _per_server(gpus, "--gpus", names).items()}
    if len(names) > 1 or replicas > 1:  # one block of GPUs per server, shared on a smaller host
        chosen, share = place_gpus(names, chosen, per_server=(tp or 1) * replicas, visible=visible_gpus())
        mem = mem if mem is not None else share
    return [
        build_spec(name, model_path=models.get(name), port=port or default_ports[name], host=host,
                   gpus=chosen.get(name), tp=tp, replicas=replicas, context_length=context_length,
                   mem_fraction_static=mem, extra_args=extra)
        for name in names
    ]


@serve_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Each server started by 'fathom serve': URL, model, health, running/queued requests, cache hit rate."""
    import json

    from fathom.serving import manager

    rows = manager.status(_api_key(_settings()))
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if not rows:
        sys.stdout.write("no servers started by 'fathom serve' (start them with 'fathom serve start')\n")
        return
    header = ("NAME", "URL", "MODEL", "HEALTH", "RUNNING", "QUEUED", "CACHE HIT", "REPLICAS")
    table = [header] + [
        (r["name"], r["url"], r["model"], r["health"], _num(r["running"]), _num(r["queued"]),
         "-" if r["cache_hit_rate"] is None else f"{100 * r['cache_hit_rate']:.1f}%", str(r["replicas"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        sys.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


@serve_app.command()
def stop(
    name: Annotated[Optional[str], typer.Argument(help="search, synth or query [default every server]")] = None,
    grace: Annotated[float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL")] = 20.0,
) -> None:
    """Stop the servers 'fathom serve start' started (only those: by PID and start time)."""
    from fathom.serving import manager

    if name is not None and name not in TARGETS:
        raise ConfigError(f"unknown server {name!r}: use search, synth, query (or nothing for all)")
    manager.stop(None if name in (None, "all") else [name], grace_s=grace, say=_say)


@serve_app.command()
def logs(
    name: Annotated[str, typer.Argument(help="search, synth, query, or one process such as search-router, search-0")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines")] = False,
) -> None:
    """Print a server's log (every process of it, with replicas)."""
    from fathom.serving import manager

    files = manager.log_files(name)
    if not files:
        raise ConfigError(f"no log for {name!r} (see 'fathom serve status')")
    out = sys.stdout.buffer
    positions: dict[Any, int] = {}
    for path in files:
        if len(files) > 1:
            out.write(f"==> {path.name} <==\n".encode())
        data = path.read_bytes() if path.exists() else b""
        out.write(data)
        positions[path] = len(data)
    out.flush()
    while follow:
        time.sleep(0.5)
        for path in files:
            try:
                with path.open("rb") as fh:
                    fh.seek(positions[path])
                    data = fh.read()
            except OSError:
                continue
            if data:
                out.write(data)
                out.flush()
                positions[path] += len(data)
