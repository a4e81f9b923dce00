"""The checkpointer LangGraph's dev server uses (``langgraph.json`` → ``checkpointer.path``).

Threads made in LangGraph Studio are stored in Fathom's own run database (``FATHOM_DB_URL``, or
the default SQLite file), so they survive a restart of ``langgraph dev``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fathom.checkpoints.runs import open_store
from fathom.checkpoints.saver import SQLSaver


@asynccontextmanager
async def studio_checkpointer() -> AsyncIterator[SQLSaver]:
    """Open the run database for the server's lifetime and yield its saver."""
    async with open_store(os.environ.get("FATHOM_DB_URL") or None) as store:
        yield store.saver
