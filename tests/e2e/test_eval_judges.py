"""A 20-question JSONL end to end with each judge, as a user runs `fathom eval`, against the fakes.

The fake search model answers every question in one turn (its answer is scripted per question
in :data:`ROWS`); the LLM judge is a second fake server on the OpenAI-compatible route whose
grader replies are scripted per question too. Each row says which verdict each judge must give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fake_env
from tests.fakes.sglang import FakeSGLang, Reply

C, W, N = "correct", "incorrect", "not_attempted"  # W: wrong
# id, question, gold, the model's answer, then the verdicts of exact, f1, mcq, numeric and the
# scripted LLM grader. mcq and numeric compare a gold that is no option letter / no number as exact.
ROWS: list[tuple[str, str, Any, str, str, str, str, str, str]] = [
    ("q01", "Which city is the capital of France?", "Paris", "Paris", C, C, C, C, C),
    ("q02", "Who wrote Hamlet?", "William Shakespeare", "william shakespeare.", C, C, C, C, C),
    ("q03", "What is the largest planet of the solar system?", "Jupiter", "The planet Jupiter", W, W, W, W, C),
    ("q04", "Which society publishes the Philosophical Transactions?", "Royal Society of London",
     "the Royal Society of London, UK", W, C, W, W, C),
    ("q05", "How many metres are in a kilometre?", "1,000", "1000", W, W, W, C, C),
    ("q06", "In which year did the Berlin Wall fall?", 1989, "1989", C, C, C, C, C),
    ("q07", "What is seven times six?", "42", "42.0", W, W, W, C, C),
    ("q08", "At what Celsius temperature does water boil at sea level?", "100", "about 99", W, W, W, W, W),
    ("q09", "Which is a noble gas? (A) Oxygen (B) Neon (C) Iron (D) Sodium", "B", "(B) Neon", W, W, C, W, C),
    ("q10", "Which planet is called the Red Planet? (A) Venus (B) Mars (C) Saturn (D) Mercury", "B",
     "The answer is B.", W, W, C, W, C),
    ("q11", "How many legs does a tripod have? (A) 2 (B) 3 (C) 4 (D) 5", "B", "C", W, W, W, W, W),
    ("q12", "Which metal is liquid at room temperature? (A) Iron (B) Tin (C) Lead (D) Mercury", "D", "d",
     C, C, C, C, C),
    ("q13", "Who painted the Mona Lisa?", "Leonardo da Vinci", "Michelangelo", W, W, W, W, W),
    ("q14", "What is the chemical symbol for gold?", "Au", "AU", C, C, C, C, C),
    ("q15", "Which element has atomic number 1?", "Hydrogen", "Helium", W, W, W, W, W),
    ("q16", "How many days does a leap year have?", "366", "366 days", W, W, W, C, C),
    ("q17", "What is the square root of two, to two decimals?", "1.41", "1.41", C, C, C, C, C),
    ("q18", "Where does the Eiffel Tower stand?", "Paris, France", "Paris France", C, C, C, C, C),
    ("q19", "Who discovered penicillin?", "Alexander Fleming", "W could not find out.", W, W, W, W, N),
    ("q20", "What is the speed of light in kilometres per second?", "299,792", "299792 km/s", W, W, W, C, C),
]
KINDS = ("exact", "f1", "mcq", "numeric", "llm")
GARBLED = "q13"  # the grader's first reply about it has no verdict: judge_error, never incorrect
GRADER_FILE = "Grade it. Question: {question} Target: {target} Predicted: {predicted_answer} Reply A, B or C.\n"
LETTERS = {C: "A", W: "B", N: "C"}


def expected(kind: str) -> dict[str, str]:
    column = 4 + KINDS.index(kind)
    return {row[0]: row[column] for row in ROWS}  # type: ignore[misc]


def row_of(prompt: str) -> tuple[Any, ...]:
    [row] = [row for row in ROWS if row[1] in prompt]
    return row


def search_model(prompt: str) -> str:
    """The fake search model: a boxed answer at once, no tool call."""
    return f"I know this one.</think>\n\nThe answer is \\boxed{{{row_of(prompt)[3]}}}."


class Grader:
    """The fake LLM judge's replies: the scripted verdict, with our labels or SimpleQA's letters."""

    def __init__(self) -> None:
        self.garbled = False

    def __call__(self, prompt: str) -> Reply:
        row = row_of(prompt)
        verdict = row[-1]
        if row[0] == GARBLED and not self.garbled:
            self.garbled = True
            return Reply("I am unable to grade this one.")
        if "Reply A, B or C" in prompt:
            return Reply(LETTERS[verdict])
        return Reply(f"{verdict.upper()}\nScripted verdict for {row[0]}.")


@pytest.fixture
def judge_server():
    with FakeSGLang(model_path="judge-model", fallback=Grader()) as fake:
        yield fake


def write_dataset(directory: Path, name: str) -> str:
    path = directory / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": r[0], "question": r[1], "answer": r[2]}) + "\n" for r in ROWS),
                    encoding="utf-8")
    return str(path)


def run(cli, sglang, searxng, web, data: str, *args: str) -> dict[str, Any]:
    """`fathom eval run DATA ARGS --json` with all 20 questions in flight at once; its summary."""
    result = cli("eval", "run", data, "--concurrency", "20", "--max-rounds", "2", "--json", "-q", *args,
                 env=fake_env(sglang, searxng, web), timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rejudge(cli, name: str, *args: str) -> dict[str, Any]:
    result = cli("eval", "rejudge", name, "--json", *args, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def exported(cli, name: str) -> list[dict[str, Any]]:
    result = cli("eval", "export", name)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def verdicts(cli, name: str) -> dict[str, str]:
    return {row["id"]: row["verdict"] for row in exported(cli, name)}


def correct(kind: str) -> int:
    return sum(v == C for v in expected(kind).values())


def graded(fake: FakeSGLang) -> int:
    """Chat completions the judge server was asked for (model lookups are not gradings)."""
    return sum(r["path"] == "/v1/chat/completions" for r in fake.requests)


@pytest.fixture
def sglang():
    with FakeSGLang(fallback=search_model) as fake:
        yield fake


def test_the_llm_judge_grades_twenty_answers_once_each(cli, sglang, searxng, web, judge_server, tmp_path):
    data = write_dataset(tmp_path, "trivia")
    judge_url = judge_server.url + "/v1"
    summary = run(cli, sglang, searxng, web, data, "--judge", "llm", "--judge-model", judge_url)
    assert len(sglang.prompts) == 20  # one turn a question
    assert summary["done"] == 20 and graded(judge_server) == 20
    assert summary["verdicts"] == {"correct": 15, "incorrect": 3, "not_attempted": 1, "judge_error": 1}
    metrics = summary["metrics"]
    assert metrics["accuracy"] == 15 / 20 and metrics["judge_error"] == 1 and metrics["not_attempted"] == 1
    rows = exported(cli, "trivia")
    assert {r["id"]: r["verdict"] for r in rows} == {**expected("llm"), GARBLED: "judge_error"}
    [name] = {r["judge"] for r in rows}
    assert re.fullmatch(r"llm:judge-model@[0-9a-f]{12}", name)
    assert rows[0]["reason"] == "Scripted verdict for q01." and rows[0]["answer"] == "Paris"

    # The same judge again: only the answer whose grading failed is graded again (errors are
    # never cached); a second time, no answer is.
    again = rejudge(cli, "trivia", "--judge", "llm", "--judge-model", judge_url)
    assert graded(judge_server) == 21
    assert again["rejudged"] == {"items": 20, "changed": 1, "judge": name}
    assert again["metrics"]["incorrect"] == 4 and again["metrics"]["judge_error"] == 0
    third = rejudge(cli, "trivia", "--judge", "llm", "--judge-model", judge_url)
    assert graded(judge_server) == 21  # every verdict from the SQL cache: no model asked
    assert third["rejudged"] == {"items": 20, "changed": 0, "judge": name}  # q13 stays incorrect

    # Another grader text is another judge: everything is graded again, and SimpleQA's letters read.
    grader = tmp_path / "grader.txt"
    grader.write_text(GRADER_FILE, encoding="utf-8")
    letters = rejudge(cli, "trivia", "--judge", "llm", "--judge-model", judge_url, "--judge-prompt-file", str(grader))
    assert graded(judge_server) == 41
    assert letters["rejudged"]["judge"] != name and letters["rejudged"]["changed"] == 0
    assert letters["metrics"]["correct"] == 15 and letters["metrics"]["not_attempted"] == 1
    assert len(sglang.prompts) == 20  # nothing was researched again


def test_each_rule_judge_scores_the_twenty_answers(cli, sglang, searxng, web, tmp_path):
    data = write_dataset(tmp_path, "trivia")
    summary = run(cli, sglang, searxng, web, data, "--judge", "exact")
    assert summary["verdicts"]["correct"] == correct("exact") == 7
    assert verdicts(cli, "trivia") == expected("exact")
    assert summary["metrics"]["accuracy"] == summary["metrics"]["accuracy_completed"] == 7 / 20
    assert len(sglang.prompts) == 20

    f1 = rejudge(cli, "trivia", "--judge", "f1")
    assert f1["rejudged"] == {"items": 20, "changed": 1, "judge": "f1@0.8"}  # q04: token F1 0.89
    assert f1["metrics"]["correct"] == correct("f1") == 8
    rows = exported(cli, "trivia")
    assert {r["id"]: r["verdict"] for r in rows} == expected("f1") and {r["judge"] for r in rows} == {"f1@0.8"}
    # mcq and numeric question by question: see test_auto_picks_the_judge_by_data_set_name
    assert rejudge(cli, "trivia", "--judge", "mcq")["metrics"]["correct"] == correct("mcq") == 9
    assert rejudge(cli, "trivia", "--judge", "numeric")["metrics"]["correct"] == correct("numeric") == 11
    shown = cli("eval", "show", "trivia", "--json")  # what a user looks at later
    assert shown.returncode == 0 and json.loads(shown.stdout)["metrics"]["accuracy"] == 11 / 20
    back = rejudge(cli, "trivia", "--judge", "auto")  # a name no known set has, no judge model: exact
    assert back["rejudged"] == {"items": 20, "changed": 4, "judge": "exact"}  # q05, q07, q16, q20
    assert back["metrics"]["correct"] == 7
    assert len(sglang.prompts) == 20  # rejudging researches nothing


@pytest.mark.parametrize(("dataset", "kind"), [("gpqa-diamond", "mcq"), ("aime25", "numeric")])
def test_auto_picks_the_judge_by_data_set_name(cli, sglang, searxng, web, tmp_path, dataset, kind):
    """A file named like a known multiple-choice or numeric set is judged as that set is."""
    data = write_dataset(tmp_path, dataset)
    summary = run(cli, sglang, searxng, web, data, "--judge", "auto")
    assert summary["eval"] == dataset and summary["done"] == 20
    assert summary["verdicts"]["correct"] == correct(kind)
    rows = exported(cli, dataset)
    assert {r["id"]: r["verdict"] for r in rows} == expected(kind)
    assert {r["judge"] for r in rows} == {kind}
    assert summary["metrics"]["accuracy"] == summary["metrics"]["accuracy_completed"] == correct(kind) / 20
