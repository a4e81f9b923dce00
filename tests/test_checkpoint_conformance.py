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
from tests.test_checkpoint_support import BACKENDS, SyncPathSaver, server

BASE_TESTS = 58  # put 17, put_writes 10, get_tuple 10, list 16, delete_thread 5
EXTENDED_TESTS = 23  # delete_for_runs 7, copy_thread 8, prune 8


@pytest.mark.parametrize("path", ["async", "sync"])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_conformance(backend: str, path: str, tmp_path: Path) -> None:
    """The async API as is, and the sync API through a to_thread adapter, pass all 81 tests."""
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
    assert sum(r["tests_passed"] for r in results.values()) == BASE_TESTS + EXTENDED_TESTS
