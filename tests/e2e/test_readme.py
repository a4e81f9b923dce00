"""The README's Python examples run as written (against the fake servers on 127.0.0.1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fake_env, research_script
from tests.support.studio import ROOT, dev, needs_langgraph_cli

__all__ = ["dev"]  # fixture
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def block_with(marker: str) -> str:
    [block] = [b for b in BLOCKS if marker in b]
    return block


def run_example(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_")}
    return subprocess.run([sys.executable, str(script)], env={**clean, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_every_python_block_is_covered() -> None:
    assert len(BLOCKS) == 2 and any("build_graph()" in b for b in BLOCKS) and any("get_client" in b for b in BLOCKS)


def test_the_embedding_example_runs_as_written(sglang, searxng, web, tmp_path) -> None:
    sglang.add(*research_script(web))
    result = run_example(block_with("build_graph()"), fake_env(sglang, searxng, web), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "1897"


@needs_langgraph_cli
def test_the_studio_sdk_example_runs_against_langgraph_dev(dev, sglang, web, tmp_path) -> None:
    sglang.add(*research_script(web))
    code = block_with("get_client")
    assert "http://127.0.0.1:2024" in code
    result = run_example(code.replace("http://127.0.0.1:2024", dev.start().url), {}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "1897"


@pytest.mark.parametrize("command", ["pip install fathom ", "pip install 'fathom["])
def test_install_lines_name_the_distribution(command: str) -> None:
    """`fathom` on PyPI is another project: every install line names ours."""
    assert command not in README
