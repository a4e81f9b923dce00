"""Each folder's rule is an import-linter contract (pyproject.toml): a broken rule fails CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")


def broken_contracts(output: str) -> list[str]:
    """The names of the contracts the report calls BROKEN (names may wrap across lines)."""
    text = " ".join(output.split("Contracts:")[0].split("----- ")[-1].split())
    parts = re.split(r" (KEPT|BROKEN)(?: \(\d+ ignored imports?\))? ?", text)
    return [name for name, verdict in zip(parts[::2], parts[1::2]) if verdict == "BROKEN"]


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def copy_of_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "fathom", tmp_path / "fathom", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("nodes/read.py", "import fathom.store.runs", "no store, app, cli or settings"),
        ("nodes/search.py", "from fathom.settings import Settings", "no store, app, cli or settings"),
        ("tools/fetch.py", "import fathom.store.cache", "no store, app, cli or settings"),
        ("graph/build.py", "import fathom.app.services", "Layers"),
        ("store/cache.py", "import fathom.settings", "The store persists"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_package(tmp_path)
    target = tree / "fathom" / module
    target.write_text(target.read_text() + f"\n{line}  # the forbidden import\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert any(contract in name for name in broken_contracts(result.stdout)), result.stdout
