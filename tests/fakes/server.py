"""Run a real ASGI app on 127.0.0.1 in a background thread: the base of every fake service.

Fakes speak the real protocol over real sockets, so clients are tested exactly as they run.
Traffic stays on loopback by construction: the server binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DroppedConnection(Exception):
    """Raised mid-body on purpose: the server closes the connection without finishing the response."""


async def dropped_body(body: bytes, after: int) -> AsyncIterator[bytes]:
    """A streamed body cut after ``after`` bytes (a server that dies or a proxy that gives up
    mid-response): the client sees the connection close before the body's end."""
    yield body[:after]
    await asyncio.sleep(0.01)
    raise DroppedConnection("the fake cuts the connection here")


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for each connection a fake cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class LoopbackServer:
    """Serve ``app`` on ``127.0.0.1:<free port>`` until :meth:`stop`; usable as a context manager."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.host = "127.0.0.1"
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
