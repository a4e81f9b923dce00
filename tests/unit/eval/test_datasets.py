"""Evaluation sets: rows, errors naming their lines, installed names, and deterministic selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fathom.app import upstream
from fathom.errors import ConfigError
from fathom.eval.datasets import Item, load_dataset, select


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(**kw) -> str:
    return json.dumps(kw)


def test_loads_rows_with_integer_ids_and_answers_and_keeps_extra_keys(tmp_path):
    path = write(
        tmp_path / "aime25.jsonl",
        row(id=0, question="Find the sum.", answer=70),
        "",
        row(id="Text-1", question="Which organ?", answer="B", options={"A": "liver"}, medical_task="Basic"),
    )
    ds = load_dataset(str(path))
    assert ds.name == "aime25" and ds.path == path and len(ds) == 2
    assert ds.items[0] == Item("0", "Find the sum.", "70", {})  # id 0 is kept, not replaced
    assert ds.items[1].extra == {"options": {"A": "liver"}, "medical_task": "Basic"}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([row(id="a", question="q", answer="x"), "{not json"], r"line 2: not JSON"),
        ([row(id="a", question="q", answer="x"), "[1, 2]"], r"line 2: not a JSON object"),
        ([row(question="q", answer="x")], r"line 1: no id"),
        ([row(id="", question="q", answer="x")], r"line 1: empty id"),
        ([row(id=None, question="q", answer="x")], r"line 1: no id"),
        (["", row(id="a", answer="x")], r"line 2: no question"),
        ([row(id="a", question="q")], r"line 1: no answer"),
        ([row(id="a", question="q", answer="")], r"line 1: empty answer"),
        ([row(id="a", question="q", answer=["x"])], r"line 1: the answer must be a string or a number"),
        ([row(id=True, question="q", answer="x")], r"line 1: the id must be a string or an integer"),
    ],
)
def test_a_bad_row_is_an_error_naming_its_line(tmp_path, lines, message):
    path = write(tmp_path / "bad.jsonl", *lines)
    with pytest.raises(ConfigError, match=message) as caught:
        load_dataset(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_duplicate_id_names_both_lines(tmp_path):
    path = write(
        tmp_path / "dup.jsonl",
        row(id="q1", question="a", answer="1"),
        row(id="q2", question="b", answer="2"),
        row(id=1, question="c", answer="3"),
        row(id="1", question="d", answer="4"),
    )
    with pytest.raises(ConfigError, match=r"line 4: id '1' is already used on line 3"):
        load_dataset(str(path))


def test_missing_file_empty_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ConfigError, match="has no rows"):
        load_dataset(str(write(tmp_path / "empty.jsonl", "")))
    with pytest.raises(ConfigError, match="unknown data set 'nosuchset'"):
        load_dataset("nosuchset")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "a", "question": "caf\xe9", "answer": "x"}\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_dataset(str(tmp_path / "latin1.jsonl"))


def test_an_installed_name_resolves_through_upstream_case_insensitively():
    with pytest.raises(ConfigError, match="not installed: run `fathom datasets fetch gpqa-diamond`"):
        load_dataset("GPQA-Diamond")
    target = upstream.dataset_file("gpqa-diamond")
    target.parent.mkdir(parents=True, exist_ok=True)
    write(target, row(id=1, question="Options A-D. Put the letter in \\boxed{}.", answer="C"))
    ds = load_dataset("GPQA-Diamond")
    assert (ds.name, ds.path, ds.items[0].id, ds.items[0].answer) == ("gpqa-diamond", target, "1", "C")


ITEMS = [Item(f"q{i}", f"question {i}", str(i)) for i in range(20)]


def test_select_limit_ids_and_unknown_ids():
    assert [i.id for i in select(ITEMS, limit=3)] == ["q0", "q1", "q2"]
    assert select(ITEMS) == ITEMS
    assert [i.id for i in select(ITEMS, ids=["q7", "q2"])] == ["q2", "q7"]  # the set's order
    with pytest.raises(ConfigError, match="ids not in the data set: q99, nope"):
        select(ITEMS, ids=["q1", "q99", "nope"])
    with pytest.raises(ConfigError, match="--limit must be 0 or more"):
        select(ITEMS, limit=-1)


def test_sampling_is_deterministic_per_seed_and_keeps_the_sets_order():
    first = select(ITEMS, sample=5, seed=7)
    assert first == select(ITEMS, sample=5, seed=7)
    assert len(first) == 5 and len({i.id for i in first}) == 5
    assert first == sorted(first, key=ITEMS.index)
    others = {tuple(i.id for i in select(ITEMS, sample=5, seed=s)) for s in range(10)}
    assert len(others) > 1  # the seed matters
    assert select(ITEMS, sample=50) == ITEMS  # more than there are: all of them
    assert select(ITEMS, sample=5, seed=7, limit=2) == first[:2]
