"""`fathom runs` and `fathom resume` on empty, busy and broken databases."""

from __future__ import annotations

import json
import sqlite3

from tests.conftest import fake_env, research_script
from tests.fakes.server import free_port


def test_runs_on_an_empty_database(cli):
    listed = cli("runs", "list")
    assert listed.returncode == 0 and "no runs yet" in listed.stderr
    assert cli("runs", "list", "--json").stdout == ""


def test_unknown_run_ids_are_clear_errors(cli):
    for args in (["runs", "show", "nope"], ["runs", "export", "nope"], ["runs", "delete", "nope"], ["resume", "nope"]):
        result = cli(*args)
        assert result.returncode == 2, args
        assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]], result.stderr
        assert result.stderr.startswith("fathom: error: no run 'nope'"), result.stderr


def test_list_show_export_delete_a_finished_run(cli, sglang, searxng, web, tmp_path):
    env = fake_env(sglang, searxng, web)
    for run_id in ("first", "second"):
        sglang.add(*research_script(web))
        assert cli("research", "-q", "--run-id", run_id, "When did the Kestrel Bridge open?", env=env).returncode == 0

    table = cli("runs", "list")
    assert "first" in table.stdout and "second" in table.stdout and "answered" in table.stdout
    rows = [json.loads(line) for line in cli("runs", "list", "--json").stdout.splitlines()]
    assert [r["run_id"] for r in rows] == ["second", "first"]  # newest first
    assert all(r["status"] == "answered" and r["rounds"] == 3 and r["answer"] == "1897" for r in rows)
    assert "api_key" not in json.dumps(rows)
    assert cli("runs", "list", "--status", "failed", "--json").stdout == ""
    assert len(cli("runs", "list", "--status", "answered", "--json").stdout.splitlines()) == 2
    for word in ("bogus", "done"):  # the old word for answered is not part of the vocabulary
        refused = cli("runs", "list", "--status", word)
        assert refused.returncode == 2 and "running, waiting, interrupted, answered, unanswered, failed" in refused.stderr
    assert len(cli("runs", "list", "--limit", "1", "--json").stdout.splitlines()) == 1

    shown = cli("runs", "show", "first")
    assert shown.returncode == 0 and "1897" in shown.stdout and "query_url" in shown.stdout
    details = json.loads(cli("runs", "show", "--json", "first").stdout)
    assert details["answer"] == "1897" and len(details["tool_calls"]) == 3
    assert details["tool_calls"][1]["result"].startswith("The useful information in")
    assert details["tool_calls"][1]["result"].endswith("more characters]")  # truncated for display

    exported = json.loads(cli("runs", "export", "first", "--format", "json").stdout)
    assert [m["type"] for m in exported["transcript"]][:3] == ["human", "ai", "tool"]
    assert exported["record"]["question"] == "When did the Kestrel Bridge open?"
    assert "14 June 1897" in exported["tool_results"][1]["result"]  # the full trace, untruncated
    out = tmp_path / "trace.md"
    assert cli("runs", "export", "first", "--format", "md", "--out", str(out)).returncode == 0
    markdown = out.read_text()
    assert markdown.startswith("# When did the Kestrel Bridge open?") and "## Round 3" in markdown

    # Resuming a finished run changes nothing and prints its answer; it takes research's flags.
    again = cli("resume", "-q", "first", env=env)
    assert again.returncode == 0 and again.stdout == "1897\n"
    config = tmp_path / "fathom.toml"
    config.write_text("[fathom]\nmax_rounds = 5\n")
    flags = ["--search-protocol", "chat", "--language", "French", "--no-verify", "--config", str(config),
             "--max-calls-per-turn", "2", "--prompt-file", str(config), "--synth-prompt-file", str(config)]
    again = cli("resume", "-q", "--json", *flags, "first", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "answered"
    refused = cli("resume", "-q", "--config", str(tmp_path), "first", env=env)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Is a directory" in refused.stderr

    assert cli("runs", "delete", "first").returncode == 0
    assert cli("runs", "show", "first").returncode == 2
    assert [json.loads(line)["run_id"] for line in cli("runs", "list", "--json").stdout.splitlines()] == ["second"]


def test_a_run_whose_model_fails_is_recorded_as_failed(cli, sglang):
    """A server that answers with an error (not one that is down: that run is resumable, see
    test_cli) fails the run, and the record says why."""
    sglang.fail_next(5, status=400)
    result = cli("research", "-q", "--run-id", "bad", "--search-model-url", sglang.url, "--search-backend", "searxng",
                 "--searxng-url", "http://127.0.0.1:9", "q?")
    assert result.returncode == 3 and "fathom resume bad" in result.stderr
    [row] = [json.loads(line) for line in cli("runs", "list", "--json").stdout.splitlines()]
    assert row["status"] == "failed" and "400" in row["error"]


def test_a_database_that_is_not_fathoms_is_refused(cli, tmp_path):
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE fathom_runs (x INTEGER)")
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    result = cli("runs", "list", "--db", f"sqlite:///{foreign}")
    assert result.returncode == 4
    assert result.stderr.strip().startswith("fathom: error:") and len(result.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    result = cli("runs", "list", "--db", f"sqlite:///{garbage}")
    assert result.returncode == 4 and "fathom: error:" in result.stderr


def test_an_unreachable_database_is_a_clear_error(cli):
    port = free_port()
    result = cli("runs", "list", "--db", f"postgresql://nobody@127.0.0.1:{port}/none")
    assert result.returncode == 4
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fathom: error:") and str(port) in line


def test_a_run_records_its_prompts_source_and_digest(cli, sglang, searxng, web):
    import hashlib

    from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT

    sglang.add(*research_script(web))
    assert cli("research", "-q", "--run-id", "p1", "When did the Kestrel Bridge open?", env=fake_env(sglang, searxng, web)).returncode == 0
    record = json.loads(cli("runs", "show", "p1", "--json").stdout)["record"]
    prompts = record["options"]["prompts"]
    assert prompts["search"] == {"source": "builtin", "sha256": hashlib.sha256(DEFAULT_SEARCH_PROMPT.text.encode()).hexdigest()}
    assert prompts["synthesizer"]["source"] == "builtin" and len(prompts["synthesizer"]["sha256"]) == 64
