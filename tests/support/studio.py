"""`langgraph dev` as a subprocess on a free loopback port, wired to the fake servers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import fake_env
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
needs_langgraph_cli = pytest.mark.skipif(
    not LANGGRAPH.exists() and shutil.which("langgraph") is None,
    reason="langgraph-cli is not installed (pip install -e '.[dev]')",
)


class DevServer:
    """`langgraph dev` in the repo root, as a subprocess on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> DevServer:
        cli = str(LANGGRAPH) if LANGGRAPH.exists() else "langgraph"
        self.log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [cli, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so the server and its workers stop together
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("langgraph dev did not start:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:  # it already exited (its log says why)
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        self.log.close()


@pytest.fixture
def dev(sglang, searxng, web, db_url, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FATHOM_")},
        **fake_env(sglang, searxng, web),
        "FATHOM_DB_URL": db_url,
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    server = DevServer(env, tmp_path / "dev.log")
    yield server
    server.stop()
