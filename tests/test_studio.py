"""LangGraph Studio: `langgraph dev` serves langgraph.json offline; the SDK runs a question."""

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

from tests.conftest import fake_env, research_script
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")

pytestmark = pytest.mark.skipif(
    not LANGGRAPH.exists() and shutil.which("langgraph") is None,
    reason="langgraph-cli is not installed (pip install -e '.[dev]')",
)


@pytest.fixture
def dev_server(sglang, searxng, web, tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FATHOM_")},
        **fake_env(sglang, searxng, web),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    log = (tmp_path / "dev.log").open("w")
    cli = str(LANGGRAPH) if LANGGRAPH.exists() else "langgraph"
    proc = subprocess.Popen(
        [cli, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the server and its workers stop together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("langgraph dev did not start:\n" + (tmp_path / "dev.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


async def test_sdk_client_runs_a_question_and_reads_the_state(dev_server, sglang, web):
    from langgraph_sdk import get_client

    sglang.add(*research_script(web))
    client = get_client(url=dev_server)
    assistants = await client.assistants.search()
    assert "fathom" in [a["graph_id"] for a in assistants]
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "fathom", input={"question": "When did the Kestrel Bridge open?"})
    assert result["answer"] == "1897" and result["status"] == "answered"
    state = await client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert values["rounds"] == 3
    assert [m["type"] for m in values["messages"]][:2] == ["human", "ai"]
    assert {s["url"] for s in values["sources"]} == {web.url("/article"), web.url("/news/tram")}
    assert web.hits["/article"] == 1
