"""The fake SGLang launcher and router that ``fathom serve`` tests start as real processes.

``python -m sglang.launch_server ARGS`` (with ``tests/fakes/serve_path`` on PYTHONPATH) appends
its argv and environment facts to the JSON-lines file named by ``FAKE_SGLANG_RECORD`` and serves
:class:`~tests.fakes.sglang.FakeSGLang` (plus ``/metrics``) on ``--port``, always on 127.0.0.1.
It prints its argv, as SGLang logs its server args (with the API key in them).
``FAKE_SGLANG_FAIL=MESSAGE`` makes it print MESSAGE and exit 1 instead of serving.

The fake router (``smg launch …`` or ``python -m sglang_router.launch_router …``) forwards
every request round-robin to ``--worker-urls`` and serves ``/health`` and ``/workers``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import threading
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.server import LoopbackServer
from tests.fakes.sglang import FakeSGLang

RECORD_VAR = "FAKE_SGLANG_RECORD"
FAIL_VAR = "FAKE_SGLANG_FAIL"


class MetricsSGLang(FakeSGLang):
    """FakeSGLang with SGLang's Prometheus ``/metrics`` (fixed, recognisable values)."""

    def _app(self) -> Starlette:
        app = super()._app()
        app.router.routes.append(Route("/metrics", self._metrics, methods=["GET"]))
        return app

    async def _metrics(self, request: Request) -> Response:
        labels = f'model_name="{self.model_path}",engine_type="unified",tp_rank="0",pp_rank="0"'
        with self._lock:
            served = sum(1 for r in self.requests if r["path"] == "/generate")
        text = (
            "# HELP sglang:num_running_reqs The number of running requests.\n"
            "# TYPE sglang:num_running_reqs gauge\n"
            f"sglang:num_running_reqs{{{labels}}} 2.0\n"
            "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n"
            "# TYPE sglang:num_queue_reqs gauge\n"
            f"sglang:num_queue_reqs{{{labels}}} 1.0\n"
            "# HELP sglang:cache_hit_rate The prefix cache hit rate.\n"
            "# TYPE sglang:cache_hit_rate gauge\n"
            f"sglang:cache_hit_rate{{{labels}}} 0.25\n"
            f"sglang:num_requests_total{{{labels}}} {served}.0\n"
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def _record(kind: str, argv: list[str]) -> None:
    path = os.environ.get(RECORD_VAR)
    if path:
        from fathom.serving.procs import start_time

        entry = {"kind": kind, "argv": argv, "pid": os.getpid(), "start_time": start_time(os.getpid()),
                 "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _serve_until_signalled(server: LoopbackServer) -> None:
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    print(f"The server is fired up and ready to roll! (127.0.0.1:{server.port})", flush=True)
    done.wait()
    print("shutting down", flush=True)
    server.stop()


def launch_server_main() -> None:
    argv = sys.argv[1:]
    _record("sglang", argv)
    print(f"server_args={argv}", flush=True)  # as SGLang logs its ServerArgs, key included
    if os.environ.get(FAIL_VAR):
        print(os.environ[FAIL_VAR], flush=True)
        raise SystemExit(1)
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--served-model-name")
    parser.add_argument("--port", type=int, default=30000)
    parser.add_argument("--context-length", type=int, default=40960)
    parser.add_argument("--api-key")
    args, _unknown = parser.parse_known_args(argv)
    fake = MetricsSGLang(fallback=lambda prompt: f"pid {os.getpid()} answers",
                         context_length=args.context_length,
                         model_path=args.served_model_name or args.model_path, port=args.port,
                         api_key=args.api_key)
    _serve_until_signalled(_FakeServer(fake))


class _FakeServer:
    """Adapt FakeSGLang to the start/stop/port shape of LoopbackServer."""

    def __init__(self, fake: FakeSGLang) -> None:
        self.fake, self.port = fake, fake.port

    def start(self) -> None:
        self.fake.start()

    def stop(self) -> None:
        self.fake.stop()


def router_app(workers: list[str]) -> Starlette:
    turn = itertools.cycle(workers)
    lock = threading.Lock()
    client = httpx.AsyncClient(timeout=30, trust_env=False)

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    async def list_workers(request: Request) -> Response:
        return JSONResponse({"workers": [{"url": w} for w in workers], "total": len(workers)})

    async def forward(request: Request) -> Response:
        with lock:
            worker = next(turn)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        resp = await client.request(request.method, worker + request.url.path, content=await request.body(),
                                    headers=headers)
        return Response(resp.content, status_code=resp.status_code,
                        media_type=resp.headers.get("content-type"))

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/workers", list_workers, methods=["GET"]),
        Route("/{path:path}", forward, methods=["GET", "POST", "PUT"]),
    ])


def launch_router_main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    _record("router", argv)
    print(f"router args={argv}", flush=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker-urls", nargs="+", required=True)
    parser.add_argument("--policy")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prometheus-host")
    parser.add_argument("--prometheus-port")
    args = parser.parse_args(argv)
    for url in args.worker_urls:
        assert url.startswith("http://127.0.0.1:"), url  # the fake forwards to loopback only
    _serve_until_signalled(LoopbackServer(router_app(args.worker_urls), port=args.port))


def smg_main() -> None:
    """``smg launch ARGS``: the same fake router."""
    if sys.argv[1:2] != ["launch"]:
        print("fake smg: only 'smg launch' is implemented", file=sys.stderr)
        raise SystemExit(2)
    launch_router_main(sys.argv[2:])


def write_smg_script(folder: Any) -> None:
    """Write an executable ``smg`` into ``folder`` that runs :func:`smg_main` with this Python."""
    path = folder / "smg"
    path.write_text(f"#!{sys.executable}\nfrom tests.fakes.serve_fakes import smg_main\nsmg_main()\n")
    path.chmod(0o755)
