"""A search model server that takes requests and never answers, end to end through the CLI.

The run must not sit at "round 1" for the whole request budget (600 s, four attempts): with
``FATHOM_MODEL_ANSWER_TIMEOUT`` small it says it is waiting, stops ``interrupted`` with one line
naming the server, and ``fathom resume`` finishes it once the server answers again.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import fake_env, fake_settings, research_script

QUESTION = "When did the Kestrel Bridge open?"


def test_a_hung_search_model_interrupts_the_run_with_a_waiting_notice_and_resume_finishes_it(cli, sglang, searxng, web):
    env = {**fake_env(sglang, searxng, web), "FATHOM_MODEL_ANSWER_TIMEOUT": "1.5"}
    sglang.hang()
    result = cli("research", "--run-id", "hung", QUESTION, env=env)

    assert result.returncode == 3, result.stderr
    assert "round 1" in result.stderr
    assert f"still waiting for the search model at {sglang.url}" in result.stderr  # the progress notice
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fathom: error:") and sglang.url in last
    assert "is not answering" in last and "in 1.5 s" in last and "FATHOM_MODEL_ANSWER_TIMEOUT" in last
    assert "fathom resume hung" in last
    assert "retrying" not in result.stderr  # a hung server is not asked again and again
    assert sglang.hung <= 3  # the turn's request and its /health probe (no retries)
    assert sglang.prompts == []  # nothing was answered while hanging
    [row] = [json.loads(x) for x in cli("runs", "list", "--json").stdout.splitlines()]
    assert row["run_id"] == "hung" and row["status"] == "interrupted"

    sglang.unhang()
    sglang.add(*research_script(web))
    resumed = cli("resume", "--quiet", "hung", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == "1897\n"
    [row] = [json.loads(x) for x in cli("runs", "list", "--json").stdout.splitlines()]
    assert row["status"] == "answered"


async def test_a_hung_chat_search_model_stops_the_run_interrupted_and_resume_finishes_it(sglang, searxng, web, tmp_path):
    """--search-protocol chat goes through the OpenAI-compatible client: the same check, in process."""
    from fathom.app.runs import research, resume
    from fathom.models.base import ModelNotAnsweringError
    from fathom.store import open_store

    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    settings = fake_settings(sglang, searxng, web, search_protocol="chat", model_answer_timeout_s=1.0, db_url=db_url)
    sglang.hang()
    with pytest.raises(ModelNotAnsweringError, match=rf"search model at {sglang.url}/v1 is not answering"):
        await research(QUESTION, settings, run_id="hung-chat")
    async with open_store(db_url) as store:
        record = await store.runs.get("hung-chat")
    assert record is not None and record.status == "interrupted" and "is not answering" in (record.error or "")

    sglang.unhang()
    sglang.add(*research_script(web))
    summary = await resume("hung-chat", {}, db_url=db_url)
    assert (summary["status"], summary["answer"]) == ("answered", "1897")
    assert [c["name"] for c in summary["tool_calls"]] == ["search_urls", "query_url", "query_url"]
