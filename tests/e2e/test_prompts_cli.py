"""`fathom prompts` / `fathom datasets` and `--prompt trained` as a user runs them: subprocesses
against a SYNTHETIC upstream on 127.0.0.1 (see tests/unit/app/test_upstream.py), whose digest
table each subprocess is handed in ``TEST_UPSTREAM_TABLE``. No upstream text is in this repository.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_env, fake_env, research_script
from tests.unit.app.test_upstream import (
    COMMIT,
    DATASET,
    EXPECTED,
    RENDERED_SEARCH,
    FakeUpstream,
    sha,
    table_json,
    upstream_files,
)

# `python -m fathom`, with the synthetic digest table in place of the pinned one.
RUN_FATHOM = """
import json, os, sys
from fathom.app import upstream
tables = json.loads(os.environ["TEST_UPSTREAM_TABLE"])
upstream.PROMPTS = {k: upstream.TextSpec(**v) for k, v in tables["prompts"].items()}
upstream.DATASETS = {k: upstream.DatasetSpec(**v) for k, v in tables["datasets"].items()}
sys.argv[0] = "fathom"
from fathom.cli.main import main
main()
"""


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "executed.marker"


@pytest.fixture
def server(marker: Path) -> Iterator[FakeUpstream]:
    with FakeUpstream(upstream_files(marker)) as fake:
        yield fake


@pytest.fixture
def fathom(db_url: str, server: FakeUpstream):
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        extra = {"FATHOM_PROMPTS_URL": server.url, "TEST_UPSTREAM_TABLE": table_json(), **(env or {})}
        return subprocess.run(
            [sys.executable, "-c", RUN_FATHOM, *args], env=cli_env(db_url, extra), input="",
            capture_output=True, text=True, timeout=90,
        )

    return run


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fathom: error: ")
    return lines[0]


def test_fetch_list_show(fathom, marker, private_data_dir):
    before = fathom("prompts", "list")
    assert before.returncode == 0, before.stderr
    assert "search_system" in before.stdout and "missing" in before.stdout
    assert "fathom prompts fetch" in before.stderr

    fetched = fathom("prompts", "fetch")
    assert fetched.returncode == 0, fetched.stderr
    folder = private_data_dir / "fathom" / "prompts" / COMMIT
    assert f"13 prompts of upstream commit {COMMIT} in {folder}" in fetched.stdout
    assert not marker.exists(), "a fetched file was executed"

    listed = fathom("prompts", "list")
    assert listed.returncode == 0, listed.stderr
    assert str(folder) in listed.stdout
    for name, text in EXPECTED.items():
        line = next(line for line in listed.stdout.splitlines() if line.startswith(name + " "))
        assert " ok " in line and sha(text) in line

    shown = fathom("prompts", "show", "search_system")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == EXPECTED["search_system"]  # bytes as extracted, whitespace quirks kept
    assert sha(EXPECTED["search_system"]) in shown.stderr and str(folder / "search_system.txt") in shown.stderr

    unknown = fathom("prompts", "show", "nope")
    assert unknown.returncode == 2 and "unknown prompt 'nope'" in one_error_line(unknown)


def test_a_changed_upstream_file_is_refused_with_one_line(fathom, server, private_data_dir):
    path = f"{COMMIT}/serving/web_agents/compressor.py"
    server.files[path] = server.files[path].replace(b"Synthetic extractor ", b"Altered extractor ")

    result = fathom("prompts", "fetch")

    assert result.returncode == 2
    line = one_error_line(result)
    assert "evidence_system" in line and "has changed" in line and "nothing was stored" in line
    assert sha(EXPECTED["evidence_system"]) in line
    assert sha(EXPECTED["evidence_system"].replace("Synthetic extractor ", "Altered extractor ")) in line
    assert not (private_data_dir / "fathom" / "prompts" / COMMIT).exists()


def test_a_redirect_off_the_host_is_refused(fathom, server):
    server.redirects[f"{COMMIT}/prompts.py"] = "https://example.invalid/prompts.py"
    result = fathom("prompts", "fetch")
    assert result.returncode == 2
    assert "refused a redirect" in one_error_line(result) and "example.invalid" in result.stderr


def test_research_uses_the_trained_prompt_once_fetched(fathom, sglang, searxng, web):
    env = fake_env(sglang, searxng, web)
    question = "When did the Kestrel Bridge open?"

    # Not fetched: the built-in prompt, and the header says so.
    sglang.add(*research_script(web))
    first = fathom("research", question, env=env)
    assert first.returncode == 0, first.stderr
    assert "prompt builtin" in first.stderr
    assert "Synthetic seeker" not in sglang.prompts[0]

    assert fathom("prompts", "fetch").returncode == 0

    # Fetched: trained by default, byte-exact as the model saw it in training.
    sglang.prompts.clear()
    sglang.add(*research_script(web))
    second = fathom("research", question, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "1897\n"
    assert f"prompt trained (upstream {COMMIT[:12]}) (sha256 {sha(RENDERED_SEARCH)[:12]})" in second.stderr
    assert sglang.prompts[0] == (
        f"<|im_start|>system\n{RENDERED_SEARCH}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n<think>"
    )

    # --prompt builtin still chooses ours; --prompt trained says so explicitly.
    sglang.prompts.clear()
    sglang.add(*research_script(web))
    third = fathom("research", "--prompt", "builtin", question, env=env)
    assert third.returncode == 0, third.stderr
    assert "prompt builtin" in third.stderr and RENDERED_SEARCH not in sglang.prompts[0]

    sglang.prompts.clear()
    sglang.add(*research_script(web))
    fourth = fathom("research", "--prompt", "trained", question, env=env)
    assert fourth.returncode == 0, fourth.stderr
    assert sglang.prompts[0].startswith(f"<|im_start|>system\n{RENDERED_SEARCH}<|im_end|>")


def test_prompt_trained_before_a_fetch_is_one_line(fathom, sglang, searxng, web):
    result = fathom("research", "-q", "--prompt", "trained", "q?", env=fake_env(sglang, searxng, web))
    assert result.returncode == 2
    assert "run 'fathom prompts fetch'" in one_error_line(result)
    assert sglang.prompts == []


def test_prompt_file_is_an_old_name_of_prompt(fathom, tmp_path, sglang, searxng, web):
    path = tmp_path / "mine.txt"
    path.write_bytes(b"\nMy own prompt: {func_schemas}\n    ")
    sglang.add(*research_script(web))
    result = fathom("research", "--prompt-file", str(path), "When?", env=fake_env(sglang, searxng, web))
    assert result.returncode == 0, result.stderr
    assert f"prompt {path}" in result.stderr
    assert sglang.prompts[0].startswith("<|im_start|>system\n\nMy own prompt: [{'name': 'search_urls'")
    missing = fathom("research", "-q", "--prompt", str(tmp_path / "nope.txt"), "q?")
    assert missing.returncode == 2 and "--prompt" in one_error_line(missing)


def test_datasets_fetch_and_list(fathom, server, private_data_dir):
    listed = fathom("datasets", "list")
    assert listed.returncode == 0 and "tiny" in listed.stdout and "missing" in listed.stdout

    fetched = fathom("datasets", "fetch", "tiny")
    assert fetched.returncode == 0, fetched.stderr
    path = private_data_dir / "fathom" / "datasets" / COMMIT / "tiny.jsonl"
    assert f"tiny: 3 rows, sha256 {sha(DATASET)}, {path}" in fetched.stdout
    assert path.read_bytes() == DATASET

    listed = fathom("datasets", "list")
    line = next(line for line in listed.stdout.splitlines() if line.startswith("tiny "))
    assert " ok " in line and "3 rows" in line and sha(DATASET) in line

    server.files[f"{COMMIT}/eval_datasets/tiny.jsonl"] = DATASET.replace(b"one", b"uno")
    changed = fathom("datasets", "fetch", "--all")
    assert changed.returncode == 2 and "has changed" in one_error_line(changed)
    assert path.read_bytes() == DATASET  # the installed file is kept as it was

    unknown = fathom("datasets", "fetch", "nope")
    assert unknown.returncode == 2 and "unknown data set 'nope'" in one_error_line(unknown)
    nothing = fathom("datasets", "fetch")
    assert nothing.returncode == 2 and "--all" in one_error_line(nothing)
