"""LangGraph Studio: `langgraph dev` serves langgraph.json offline; the SDK runs a question."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import fake_env, research_script
from tests.fakes.server import free_port
from tests.fakes.sglang import FakeSGLang
from tests.fakes.synthesizer import synthesizer

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")

pytestmark = pytest.mark.skipif(
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
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
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


@pytest.fixture
def dev_server(dev):
    return dev.start().url


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


@pytest.fixture
def synth_fake(web):
    with FakeSGLang(fallback=synthesizer(web)) as fake:
        yield fake


def checkpointed_threads(db_url: str) -> set[str]:
    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM fathom_checkpoints")}


async def test_studio_threads_live_in_fathoms_database_and_survive_a_restart(dev, sglang, web, db_url):
    from langgraph_sdk import get_client

    sglang.add(*research_script(web))
    client = get_client(url=dev.start().url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "fathom", input={"question": "When did the Kestrel Bridge open?"})
    assert thread["thread_id"] in checkpointed_threads(db_url)
    dev.stop()

    client = get_client(url=dev.start().url)
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["answer"] == "1897"
    history = await client.threads.get_history(thread["thread_id"])
    assert len(history) >= 5  # every step is there for time travel


async def test_plan_review_through_the_sdk(dev, sglang, web, synth_fake):
    from langgraph_sdk import get_client

    sglang.add(*research_script(web))
    dev.env["FATHOM_SYNTH_MODEL_URL"] = synth_fake.url
    client = get_client(url=dev.start().url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    question = {"question": "When did the Kestrel Bridge open?", "deepresearch": True, "review_plan": True}
    await client.runs.wait(tid, "fathom", input=question)
    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"]
    [task] = state["tasks"]
    assert task["interrupts"][0]["value"]["plan"].startswith("## Plan")

    await client.runs.wait(tid, "fathom", command={"resume": {"action": "edit", "plan": "## Studio plan"}})
    values = (await client.threads.get_state(tid))["values"]
    assert values["plan"] == "## Studio plan" and values["report_status"] == "written"
    assert "## Sources used" in values["report"]
