"""LangGraph Studio: `langgraph dev` serves langgraph.json offline; the SDK runs a question."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import research_script
from tests.fakes.sglang import FakeSGLang
from tests.fakes.synthesizer import synthesizer
from tests.support.studio import dev, needs_langgraph_cli

__all__ = ["dev"]  # fixture
pytestmark = needs_langgraph_cli


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
