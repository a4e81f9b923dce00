"""Scratch databases for tests and benchmarks.

Each use gets a fresh, uniquely named PostgreSQL or MySQL/MariaDB database that is dropped
afterwards, so concurrent test runs on one server never see each other's rows. Server URLs
come from ``FATHOM_TEST_PG_URL`` / ``FATHOM_TEST_MYSQL_URL``, defaulting to the development
servers on 127.0.0.1; :func:`unreachable` says why a server cannot be used (tests then skip).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from sqlalchemy import create_engine, text

from fathom.store.errors import driver_message
from fathom.store.urls import resolve_url

ServerBackend = Literal["postgresql", "mysql"]

ENV_VARS: dict[ServerBackend, str] = {"postgresql": "FATHOM_TEST_PG_URL", "mysql": "FATHOM_TEST_MYSQL_URL"}
DEFAULT_URLS: dict[ServerBackend, tuple[str, ...]] = {
    "postgresql": ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test"),
    "mysql": ("mysql://root@127.0.0.1:3306/test",),
}


def server_url(backend: ServerBackend) -> tuple[str | None, str]:
    """``(url, "")`` for a reachable server of ``backend``, else ``(None, why)``.

    The environment variable, when set, is the only URL tried.
    """
    env = os.environ.get(ENV_VARS[backend], "").strip()
    candidates = (env,) if env else DEFAULT_URLS[backend]
    reasons = []
    for url in candidates:
        reason = unreachable(url)
        if reason is None:
            return url, ""
        reasons.append(f"{resolve_url(url)}: {reason}")
    return None, "; ".join(reasons) + f" (set {ENV_VARS[backend]} to point elsewhere)"


def unreachable(url: str) -> str | None:
    """Why a connection to ``url`` fails, or None if it works."""
    engine = create_engine(resolve_url(url).sync_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure means "skip", never "error"
        return driver_message(exc)
    finally:
        engine.dispose()


@contextmanager
def scratch_database(url: str, prefix: str = "fathom_test") -> Iterator[str]:
    """Create a uniquely named database on the server of ``url``; yield its URL; drop it."""
    resolved = resolve_url(url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(resolved.sync_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield resolved.sync_url.set(drivername=resolved.backend, database=name).render_as_string(
                hide_password=False
            )
        finally:
            drop = f"DROP DATABASE IF EXISTS {name}"
            if resolved.backend == "postgresql":
                drop += " WITH (FORCE)"  # connections a failed test leaked must not block the drop
            with admin.connect() as conn:
                conn.execute(text(drop))
    finally:
        admin.dispose()
