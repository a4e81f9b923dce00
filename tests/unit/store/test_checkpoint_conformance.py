"""langgraph-checkpoint-conformance, base and extended, on every backend, async and sync paths."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate

from fathom.store import SQLSaver
from fathom.store.checkpoints.testing import scratch_database
from tests.support.checkpoints import BACKENDS, SyncPathSaver, server

# Every capability the suite knows, base and extended, must be detected and fully passed; the
# number of tests in each is the suite's business (it grows with upgrades).
CAPABILITIES = {"put", "put_writes", "get_tuple", "list", "delete_thread", "delete_for_runs", "copy_thread", "prune"}


@pytest.mark.parametrize("path", ["async", "sync"])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_conformance(backend: str, path: str, tmp_path: Path) -> None:
    """The async API as is, and the sync API through a to_thread adapter, pass every test of every capability."""
    saver_class = SQLSaver if path == "async" else SyncPathSaver
    server_url = server(backend) if backend != "sqlite" else None  # skips if unreachable
    databases = ExitStack()
    urls: list[str] = []
    files = itertools.count()

    async def lifespan() -> AsyncIterator[None]:
        # one scratch database per validation run; each capability gets a fresh saver on it
        if server_url is not None:
            urls.append(databases.enter_context(scratch_database(server_url)))
        try:
            yield
        finally:
            databases.close()

    @checkpointer_test(name=f"SQLSaver[{backend}, {path}]", lifespan=lifespan)
    async def factory() -> AsyncIterator[SQLSaver]:
        url = urls[0] if urls else f"sqlite:///{tmp_path}/conformance-{next(files)}.db"
        async with saver_class.from_url(url) as saver:
            yield saver

    report = await validate(factory)
    report.print_report()
    results = report.to_dict()["results"]
    assert report.passed_all(), {cap: r["failures"] for cap, r in results.items() if r["failures"]}
    assert report.conformance_level() == "FULL"
    assert CAPABILITIES <= set(results)
    for name, result in results.items():
        assert result["detected"] and result["tests_passed"] > 0, name
        assert result["tests_failed"] == 0 and result["tests_skipped"] == 0, (name, result)
