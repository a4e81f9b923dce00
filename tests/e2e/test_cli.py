"""`fathom research` as a user runs it: a subprocess against the loopback fakes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import fake_env, research_script
from tests.fakes.server import free_port


def test_research_prints_the_answer_and_progress(cli, sglang, searxng, web):
    sglang.add(*research_script(web))
    result = cli("research", "When did the Kestrel Bridge open?", env=fake_env(sglang, searxng, web))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1897\n"
    assert "round 1" in result.stderr and "round 3" in result.stderr
    assert "search_urls" in result.stderr and web.url("/article") in result.stderr
    assert "cached" in result.stderr


def test_research_json_output(cli, sglang, searxng, web):
    sglang.add(*research_script(web))
    env = fake_env(sglang, searxng, web)
    result = cli("research", "--json", "--run-id", "run42", "When did the Kestrel Bridge open?", env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {"run_id", "question", "status", "answer", "rounds", "tool_calls", "sources", "usage"}
    assert out["run_id"] == "run42" and out["status"] == "answered" and out["answer"] == "1897"
    assert out["rounds"] == 3
    assert out["tool_calls"][0] == {"name": "search_urls", "arguments": {"query": "Kestrel Bridge opening"}, "ok": True}
    assert {"url": web.url("/article"), "title": out["sources"][0]["title"]} in out["sources"]
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "cached_tokens"}
    assert out["usage"]["cached_tokens"] > 0


def test_flags_override_environment(cli, sglang, searxng, web):
    sglang.add(*research_script(web))
    env = {**fake_env(sglang, searxng, web), "FATHOM_SEARCH_MODEL_URL": f"http://127.0.0.1:{free_port()}"}
    result = cli("research", "-q", "--search-model-url", sglang.url, "When?", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1897\n"


def test_unreachable_model_server_is_one_line_and_nonzero(cli, searxng, web):
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"FATHOM_SEARCH_BACKEND": "searxng", "SEARXNG_URL": searxng.url}
    result = cli("research", "--quiet", "--search-model-url", dead, "q?", env=env)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fathom: error:") and dead in lines[0] and "unreachable" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--max-rounds", "0"], "--max-rounds"),
        (["--query-llm", "gpt-4.1-mini"], "--query-llm"),
        (["--search-backend", "altavista"], "--search-backend"),
        (["--search-model-url", "localhost:8902"], "must start with http://"),
        (["--prompt-file", "/nonexistent/prompt.txt"], "prompt"),
        (["--max-rounds", "many"], "Invalid value for '--max-rounds'"),
        (["--no-such-flag"], "No such option: --no-such-flag"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(cli, args, fragment):
    result = cli("research", *args, "q?")
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fathom: error:") and fragment in lines[0], result.stderr


def test_empty_question_is_refused(cli):
    result = cli("research", "   ")
    assert result.returncode == 2 and "question is empty" in result.stderr


def test_run_without_answer_exits_nonzero(cli, sglang, searxng, web):
    sglang.add("</think>\n", "", "")  # nothing but empty turns until the forced final one
    result = cli("research", "--quiet", "--json", "--max-rounds", "3", "q?", env=fake_env(sglang, searxng, web))
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["status"] == "failed" and out["answer"] is None
    assert result.stderr.strip().startswith("fathom: error:")
