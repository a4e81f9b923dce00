"""`fathom research` as a user runs it: a subprocess against the loopback fakes."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import call, cli_env, fake_env, research_script
from tests.fakes.server import free_port
from tests.fakes.sglang import FakeSGLang


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


# ---- the command line's own edges ----------------------------------------------------------------


def one_line(text: str) -> str:
    """Help text with its wrapping undone."""
    return " ".join(text.split())


def test_help_shows_every_options_env_var_and_default(cli):
    research = one_line(cli("research", "--help").stdout)
    for note in (
        "[env FATHOM_MAX_ROUNDS; default 64]",
        "[env FATHOM_MAX_CALLS_PER_TURN; default 8]",
        "[env FATHOM_MAX_WALL_SECONDS; default 3600]",
        "[env FATHOM_SEARCH_PROTOCOL; default fathom]",
        "[env FATHOM_VERIFY=false;",
        "[env FATHOM_DB_URL;",
        "a [fathom] table",
    ):
        assert note in research, note
    assert one_line(cli("resume", "--help").stdout).count("[env ") == research.count("[env ")
    assert "[env FATHOM_DB_URL;" in one_line(cli("runs", "list", "--help").stdout)


@pytest.mark.parametrize("args", [[], ["runs"], ["cache"], ["corpus"]])
def test_no_command_prints_the_help_once(cli, args):
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Usage:") == 1 and result.stdout.count("Commands:") == 1
    assert result.stderr == ""


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"fathom {metadata.version('fathom-deepresearch')}\n"


def test_a_directory_as_config_file_is_one_line_and_exit_2(cli, tmp_path):
    result = cli("research", "--config", str(tmp_path), "q?")
    assert result.returncode == 2
    assert result.stderr.startswith("fathom: error: config file") and result.stderr.count("\n") == 1, result.stderr
    assert str(tmp_path) in result.stderr


def test_an_unknown_option_is_named_without_a_misleading_suggestion(cli):
    result = cli("research", "--bogus", "x", "q?")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "--bogus" in line and "'fathom research --help'" in line and "--out" not in line
    typo = cli("research", "--max-round", "3", "q?")
    assert typo.returncode == 2 and "did you mean --max-rounds?" in typo.stderr
    assert "--max-wall-seconds" not in typo.stderr and "--run-id" not in typo.stderr


def test_a_failed_tool_call_says_why(cli, sglang, searxng, web):
    sglang.add(
        "Read it.</think>\n\n" + call("query_url", url="kestrel-bridge.example/history", goal="When did it open?"),
        *research_script(web),
    )
    result = cli("research", "When did the Kestrel Bridge open?", env=fake_env(sglang, searxng, web))
    assert result.returncode == 0, result.stderr
    assert "✗ query_url: invalid URL – must start with http:// or https://" in result.stderr


HEAVY = ("langgraph", "langchain_core", "openai", "sqlalchemy", "httpx", "fathom.graph", "fathom.app")


def imported_modules(*args: str, env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fathom", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--help"], ["research", "--help"], ["runs", "--help"], ["--version"]])
def test_help_imports_nothing_heavy(args):
    modules = imported_modules(*args)
    assert "typer" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], heavy


def test_listing_runs_imports_neither_langgraph_nor_a_model_client(db_url):
    modules = imported_modules("runs", "list", env=cli_env(db_url))
    assert "sqlalchemy" in modules  # it did open the database
    heavy = ("langgraph", "langchain_core", "openai", "httpx", "fathom.graph", "fathom.nodes")
    assert sorted(m for m in modules if m.startswith(heavy)) == []


CRASHING_FATHOM = """
import sys
import fathom.cli.options

def crash(*args, **kwargs):
    raise RuntimeError("an internal mistake")

fathom.cli.options.db_url_of = crash  # a bug on the way to the database
from fathom.cli.main import main
main()
"""


def test_a_bug_is_one_line_naming_a_log_of_its_traceback(db_url, tmp_path):
    env = {**cli_env(db_url), "XDG_STATE_HOME": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_FATHOM, "runs", "list"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 70
    [line] = result.stderr.splitlines()
    assert line.startswith("fathom: error: unexpected RuntimeError: an internal mistake") and "Traceback" not in line
    log = Path(line.rsplit(" ", 1)[-1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(tmp_path / "state")
    trace = log.read_text()
    assert trace.startswith("Traceback") and "def crash" not in trace and "an internal mistake" in trace
    assert "in crash" in trace


def test_an_unreachable_search_model_interrupts_the_run_and_resume_finishes_it(cli, searxng, web):
    port = free_port()  # nothing listens here until the fake starts
    dead = f"http://127.0.0.1:{port}"
    env = {"FATHOM_SEARCH_BACKEND": "searxng", "SEARXNG_URL": searxng.url, "FATHOM_ALLOW_HOSTS": web.hostport}
    result = cli("research", "--quiet", "--run-id", "nosrv", "--search-model-url", dead, "When?", env=env)
    assert result.returncode == 3
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fathom: error:") and dead in line
    assert "fathom serve start" in line and "--search-model-url" in line and "--local" in line
    assert "fathom resume nosrv" in line
    [row] = [json.loads(x) for x in cli("runs", "list", "--json").stdout.splitlines()]
    assert row["run_id"] == "nosrv" and row["status"] == "interrupted"

    with FakeSGLang(research_script(web), port=port):
        resumed = cli("resume", "--quiet", "nosrv", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == "1897\n"
