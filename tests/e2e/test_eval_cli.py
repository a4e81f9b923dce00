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
    assert "failures by cause: none" in shown.stdout
    assert "rounds mean 3.0, median 3.0; tool calls mean 3.0, median 3.0" in shown.stdout
    assert "cached), " in shown.stdout and "wall per question p50" in shown.stdout


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


def run_eval(cli, sglang, searxng, web, data, *extra, answer="1897"):
    """Run eval over ``data`` with every question answered ``answer`` by the scripted model."""
    script = research_script(web)
    script[-1] = script[-1].replace("1897", answer)
    for _ in ROWS:
        sglang.add(*script)
    result = cli("eval", "run", data, "--judge", "exact", "--concurrency", "1", "--json", "-q", *extra,
                 env=fake_env(sglang, searxng, web), timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_export_writes_one_json_line_per_item(cli, sglang, searxng, web, tmp_path):
    data = write_rows(tmp_path / "bridge.jsonl", ROWS)
    run_eval(cli, sglang, searxng, web, data)
    shown = cli("eval", "export", "bridge")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert [r["verdict"] for r in rows] == ["correct", "correct", "incorrect"]
    first = rows[0]
    assert first["gold"] == "1897" and "1897" in first["answer"] and first["status"] == "done"
    assert first["judge"] == "exact" and first["run_id"] and first["rounds"] == 3 and first["tool_calls"] == 3
    for key in ("question", "reason", "prompt_tokens", "completion_tokens", "cached_tokens", "cached_fraction", "wall_s"):
        assert key in first

    out = tmp_path / "bridge.out.jsonl"
    written = cli("eval", "export", "bridge", "--out", str(out))
    assert written.returncode == 0 and written.stdout == ""
    assert out.read_text(encoding="utf-8") == shown.stdout

    missing = cli("eval", "export", "nope")
    assert missing.returncode == 2
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("fathom: error:") and "no eval 'nope'" in line


def test_compare_counts_wins_losses_and_mcnemar(cli, sglang, searxng, web, tmp_path):
    data = write_rows(tmp_path / "bridge.jsonl", ROWS)
    run_eval(cli, sglang, searxng, web, data, "--name", "a")  # q1, q2 right; q3 wrong
    run_eval(cli, sglang, searxng, web, data, "--name", "b", "--limit", "2", answer="1990")  # q1, q2 wrong
    result = cli("eval", "compare", "a", "b", "--json")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert {k: got[k] for k in ("shared", "wins", "losses", "ties", "only_a", "only_b")} == {
        "shared": 2, "wins": 2, "losses": 0, "ties": 0, "only_a": 1, "only_b": 0}
    assert got["p_value"] == 0.5
    text = cli("eval", "compare", "b", "a")
    assert text.returncode == 0 and "wins 0, losses 2" in text.stdout and "p = 0.5" in text.stdout
    missing = cli("eval", "compare", "a", "nope")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("fathom: error:")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_rejudge_judges_stored_answers_again_without_research(cli, sglang, searxng, web, tmp_path):
    data = write_rows(tmp_path / "bridge.jsonl", ROWS)
    run_eval(cli, sglang, searxng, web, data)
    requests = len(sglang.prompts)
    result = cli("eval", "rejudge", "bridge", "--judge", "numeric", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rejudged"] == {"items": 3, "changed": 0, "judge": "numeric"}
    assert summary["metrics"]["correct"] == 2
    assert len(sglang.prompts) == requests  # nothing researched again
    rows = [json.loads(line) for line in cli("eval", "export", "bridge").stdout.splitlines()]
    assert {r["judge"] for r in rows} == {"numeric"}
    assert [r["verdict"] for r in rows] == ["correct", "correct", "incorrect"]

    no_model = cli("eval", "rejudge", "bridge", "--judge", "llm")
    assert no_model.returncode == 2
    [line] = no_model.stderr.strip().splitlines()
    assert line.startswith("fathom: error:")
    missing = cli("eval", "rejudge", "nope", "--judge", "exact")
    assert missing.returncode == 2 and "no eval 'nope'" in missing.stderr


def test_delete_removes_the_eval_and_its_runs(cli, sglang, searxng, web, tmp_path):
    data = write_rows(tmp_path / "bridge.jsonl", ROWS)
    run_eval(cli, sglang, searxng, web, data)
    assert len(cli("runs", "list", "--json").stdout.splitlines()) == 3
    result = cli("eval", "delete", "bridge")
    assert result.returncode == 0, result.stderr
    assert "deleted eval bridge: 3 questions and 3 research runs" in result.stdout
    assert cli("eval", "list", "--json").stdout == ""
    assert cli("runs", "list", "--json").stdout.strip() == ""
    again = cli("eval", "delete", "bridge")
    assert again.returncode == 2
    [line] = again.stderr.strip().splitlines()
    assert line.startswith("fathom: error:") and "no eval 'bridge'" in line


def test_report_writes_a_standalone_html_page_and_markdown_with_plots(cli, sglang, searxng, web, tmp_path):
    import base64
    import re

    rows = [{**row, "level": level} for row, level in zip(ROWS, ("easy", "easy", "hard"), strict=True)]
    data = write_rows(tmp_path / "bridge.jsonl", rows)
    run_eval(cli, sglang, searxng, web, data)

    page = tmp_path / "report.html"
    result = cli("eval", "report", "bridge", "--format", "html", "--out", str(page))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    html = page.read_text(encoding="utf-8")
    assert "<h1>Eval bridge</h1>" in html and "66.7% (2 of 3)" in html
    assert "Accuracy by level" in html and "When did the Kestrel Bridge close?" in html  # q3, the wrong one
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert len(sources) == 5 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert all(base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG") for s in sources)
    assert not re.search(r"https?://", html.split("<h2>Questions not answered")[0])

    markdown = tmp_path / "report.md"
    result = cli("eval", "report", "bridge", "--format", "md", "--out", str(markdown))
    assert result.returncode == 0, result.stderr
    text = markdown.read_text(encoding="utf-8")
    assert "| accuracy over all questions | 66.7% (2 of 3) |" in text
    assert "| hard | 1 | 0 | 0.0% | 1 | 0.0% | 0 |" in text
    assert re.search(r"\| throughput \| [\d.,]+ questions per minute \|", text)  # from the runs' times
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 5 and all(link.startswith("report_files/") for link in links)
    assert all((tmp_path / link).read_bytes().startswith(b"\x89PNG") for link in links)

    shown = cli("eval", "report", "bridge")  # Markdown on stdout: the plots need a file
    assert shown.returncode == 0 and "| correct | 2 |" in shown.stdout and "--out FILE.md" in shown.stdout

    for args, message in ((("nope",), "no eval 'nope'"), (("bridge", "--format", "pdf"), "--format must be"),
                          (("bridge", "--out", str(tmp_path / "no" / "r.html"), "--format", "html"), "cannot be written"),
                          (("bridge", "--out", str(tmp_path / "no" / "r.md")), "cannot be written")):
        failed = cli("eval", "report", *args)
        assert failed.returncode == 2
        [line] = failed.stderr.strip().splitlines()
        assert line.startswith("fathom: error:") and message in line
    assert not (tmp_path / "no").exists()  # nothing created for a bad --out
