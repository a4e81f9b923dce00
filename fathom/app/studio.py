"""What ``langgraph dev`` serves (``langgraph.json``): the research graph and Fathom's SQL saver.

The graph is compiled without a checkpointer, as the dev server requires; the server's
checkpointer is :func:`studio_checkpointer`, so threads made in LangGraph Studio are stored in
Fathom's own run database (``FATHOM_DB_URL``, or the default SQLite file) and survive a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fathom.app.services import research_graph, shared_database
from fathom.settings import Settings
from fathom.store import SQLSaver, open_store

graph = research_graph()


@asynccontextmanager
async def studio_checkpointer() -> AsyncIterator[SQLSaver]:
    """Open the run database for the server's lifetime and yield its saver. The graph's tool
    caches use the same :class:`~fathom.store.Database` (one per process and URL)."""
    async with open_store(database=shared_database(Settings.load().db_url)) as store:
        yield store.saver
