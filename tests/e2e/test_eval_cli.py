"""`fathom eval run|list|show` as a user runs them, against the fake model, search and web."""

from __future__ import annotations

import json

from tests.conftest import fake_env, research_script

ROWS = [
    {"id": "q1", "question": "When did the Kestrel Bridge open?", "answer": "1897"},
    {"id": "q2", "question": "In which year did the Kestrel Bridge open?", "answer": 1897},
    {"id": "q3", "question": "When did the Kestrel Bridge close?", "answer": "1990"},
]


def write_rows(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_an_eval_runs_scores_and_resumes_without_researching_twice(cli, sglang, searxng, web, tmp_path):
    for _ in ROWS:
        sglang.add(*research_script(web))
    data = write_rows(tmp_path / "bridge.jsonl", ROWS)
    env = fake_env(sglang, searxng, web)
    first = cli("eval", "run", data, "--judge", "exact", "--concurrency", "1", "--json", "-q", env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["eval"] == "bridge" and summary["done"] == 3
    assert summary["verdicts"] == {"correct": 2, "incorrect": 1, "not_attempted": 0, "judge_error": 0}
    assert summary["metrics"]["accuracy"] == summary["metrics"]["accuracy_completed"] == 2 / 3
    requests = len(sglang.prompts)

    again = cli("eval", "run", data, "--judge", "exact", "--json", "-q", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["verdicts"]["correct"] == 2
    assert len(sglang.prompts) == requests  # judged questions are not researched again

    listed = cli("eval", "list", "--json")
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["bridge"]
    shown = cli("eval", "show", "bridge")
    assert shown.returncode == 0 and "accuracy 66.7% of all 3 questions" in shown.stdout


def test_a_bad_dataset_row_is_one_line_naming_it(cli, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "question": "q", "answer": "x"}\nnot json\n', encoding="utf-8")
    result = cli("eval", "run", str(data), "--judge", "exact")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fathom: error:") and "line 2" in line
    assert cli("eval", "list", "--json").stdout == ""  # nothing half-written


def test_an_unknown_eval_is_a_clear_error(cli):
    result = cli("eval", "show", "nope")
    assert result.returncode == 2 and "no eval 'nope'" in result.stderr
