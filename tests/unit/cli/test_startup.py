"""Start-up: a command imports only what it uses, so help answers at once and a run starts fast.

Each check runs a fresh interpreter with ``-X importtime``, which names every module imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# What no help text needs: the graph, the store, model SDKs, ML and plotting libraries.
HEAVY = {"langgraph", "langchain_core", "langsmith", "openai", "sqlalchemy", "httpx", "transformers", "torch",
         "matplotlib", "numpy"}


def imported(*argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime ARGV``; the top-level packages it imported."""
    result = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0]
             for line in result.stderr.splitlines() if line.startswith("import time:") and "|" in line}
    return result, names


def test_fathom_help_imports_nothing_heavy():
    result, names = imported("-m", "fathom", "--help")
    assert result.returncode == 0 and "research" in result.stdout
    assert "typer" in names  # the check sees imports at all
    assert not names & (HEAVY | {"pydantic", "rich"}), sorted(names & (HEAVY | {"pydantic", "rich"}))


@pytest.mark.parametrize("command", ["research", "resume", "runs", "eval", "serve", "prompts"])
def test_a_commands_help_imports_nothing_heavy(command):
    result, names = imported("-m", "fathom", command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout
    assert not names & HEAVY, sorted(names & HEAVY)


def test_a_runs_services_import_no_model_sdk_until_a_chat_model_is_asked(tmp_path):
    """The judge and the query LLM are OpenAI-compatible clients; most runs never call them (an
    answer found verbatim in the evidence needs no judge), so the SDK is imported on first use."""
    code = (
        "import asyncio, sys\n"
        "from fathom.app.services import build_services\n"
        "from fathom.settings import Settings\n"
        "settings = Settings.load({'search_model_url': 'http://127.0.0.1:9', 'search_backend': 'searxng',\n"
        "                          'searxng_url': 'http://127.0.0.1:9', 'query_llm': 'http://127.0.0.1:9/v1',\n"
        f"                          'db_url': 'sqlite:///{tmp_path / 'runs.db'}'}}, environ={{}})\n"
        "async def main():\n"
        "    async with build_services(settings) as services:\n"
        "        assert services.judge is not None\n"
        "        print('openai' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
