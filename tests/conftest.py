"""Shared fixtures: fake model, web and search servers on 127.0.0.1, and settings that use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fathom.settings import Settings
from tests.fakes.search_apis import FakeSearxng
from tests.fakes.sglang import FakeSGLang
from tests.fakes.web import FakeWeb


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the user data dir (the default database, which also holds the tool caches) at a
    fresh temporary directory, for this process and the CLI subprocesses it starts: tests never
    read or write the developer's own database, and never share cached pages or searches."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own user data dir, so the default run database and caches are never
    the developer's own, and no test sees another's cached pages (subprocesses inherit it)."""
    data = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    with FakeWeb(slow_s=5.0) as fake:
        yield fake


@pytest.fixture
def searxng(web: FakeWeb) -> Iterator[FakeSearxng]:
    results = [
        {"title": "Kestrel Bridge – History", "url": web.url("/article"), "snippet": "Opened in 1897."},
        {"title": "Kestrel Bridge news", "url": web.url("/news/tram"), "snippet": "Tram news."},
    ]
    with FakeSearxng(results, api_key=None) as fake:
        yield fake


@pytest.fixture
def sglang() -> Iterator[FakeSGLang]:
    with FakeSGLang() as fake:
        yield fake


def fake_settings(sglang: FakeSGLang, searxng: FakeSearxng, web: FakeWeb, **overrides: Any) -> Settings:
    """Settings pointing every service at the loopback fakes, isolated from the user's environment."""
    values: dict[str, Any] = {
        "search_model_url": sglang.url,
        "search_backend": "searxng",
        "searxng_url": searxng.url,
        "allow_hosts": [web.hostport],
        "model_retries": 1,
        "tool_timeout_s": 10,
        "fetch_timeout_s": 5,
        "verify": False,  # the judge's chat requests would take scripted replies; tests opt in
    }
    values.update(overrides)
    return Settings.load(values, environ={})


def fake_env(sglang: FakeSGLang, searxng: FakeSearxng, web: FakeWeb) -> dict[str, str]:
    """The same wiring as environment variables, for subprocesses (CLI, langgraph dev)."""
    return {
        "FATHOM_SEARCH_MODEL_URL": sglang.url,
        "FATHOM_SEARCH_BACKEND": "searxng",
        "SEARXNG_URL": searxng.url,
        "FATHOM_ALLOW_HOSTS": web.hostport,
        "FATHOM_VERIFY": "false",
    }


def call(name: str, **arguments: Any) -> str:
    """A tool call as the search model writes it."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def research_script(web: FakeWeb) -> list[str]:
    """Three rounds: search, two parallel reads, a boxed answer."""
    return [
        "I need sources on the bridge.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening"),
        "Two results look useful; read both.</think>\n\n"
        + call("query_url", url=web.url("/article"), goal="When did the Kestrel Bridge open?")
        + "\n"
        + call("query_url", url=web.url("/news/tram"), goal="Anything about the Kestrel Bridge opening?"),
        "The heritage page says it opened on 14 June 1897.</think>\n\nThe Kestrel Bridge opened in \\boxed{1897}.",
    ]


SECRET_VARS = ("TAVILY_API_KEY", "SERPER_API_KEY", "OPENAI_API_KEY", "SEARXNG_URL")
CLI = Callable[..., subprocess.CompletedProcess]


def cli_env(db_url: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: the developer's own settings removed, a test database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_") and k not in SECRET_VARS}
    return {**base, "FATHOM_DB_URL": db_url, **(env or {})}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A throw-away SQLite run database: tests never touch the user's own."""
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def cli(db_url: str) -> CLI:
    """Run ``fathom ARGS…`` as a user would, in a subprocess, recording into ``db_url``."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str = "", timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fathom", *args],
            env=cli_env(db_url, env),
            input=input,  # never the terminal: the CLI must not wait for a human here
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
