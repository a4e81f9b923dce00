"""SQLite's write-ahead log is copied into the database file by a thread of the Database, not by
whichever commit takes the log past SQLite's limit (a 10-20 ms stall of that write)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from sqlalchemy import Connection, text

from fathom.store import Database
from fathom.store.plans import Plan, execute
from fathom.store.wal import WalCheckpointer

ROW = b"x" * 32_000  # ~8 pages a row
ROWS = 160  # ~1,300 pages in all: past SQLite's 1,000-page auto-checkpoint
INSERT = text("INSERT INTO payload VALUES (:n, :data)")


def create(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE payload (n INTEGER PRIMARY KEY, data BLOB)")


def insert(conn: Connection, n: int) -> None:
    conn.exec_driver_sql("INSERT INTO payload VALUES (?, ?)", (n, ROW))


def insert_plan(n: int) -> Plan[int]:
    return (yield from execute(INSERT, {"n": n, "data": ROW}))


async def test_commits_leave_the_wal_checkpoints_to_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    try:
        await db.write(create)
        for n in range(ROWS):  # every write path: sync and async transactions, sync and async plans
            if n % 4 == 0:
                await db.write(insert, n)
            elif n % 4 == 1:
                await asyncio.to_thread(db.write_sync, insert, n)
            elif n % 4 == 2:
                await db.write_plan(insert_plan(n))
            else:
                await asyncio.to_thread(db.write_plan_sync, insert_plan(n))

        def autocheckpoint(conn: Connection) -> int:
            return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

        assert await db.read(autocheckpoint) == 0  # commits never checkpoint
        # ... yet the rows reach the database file while it is open (WAL mode keeps them in the
        # log until a checkpoint copies them), without a wait for anyone
        for _ in range(200):
            if os.path.getsize(path) >= ROWS * len(ROW):
                break
            await asyncio.sleep(0.05)
        assert os.path.getsize(path) >= ROWS * len(ROW)
    finally:
        await db.aclose()
    assert not (tmp_path / "wal.db-wal").exists()  # the last connection closed removes the log


def test_the_thread_ends_when_idle_and_a_commit_starts_it_again(tmp_path: Path) -> None:
    """A Database nobody closes leaves no checkpoint thread behind for long."""
    path = str(tmp_path / "idle.db")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    checkpointer = WalCheckpointer(path, interval_s=0.01, idle_s=0.05)
    try:
        for _ in range(2):
            checkpointer.committed()
            threads = [t for t in threading.enumerate() if t.name == "fathom-wal-checkpoint"]
            assert threads
            for thread in threads:
                thread.join(timeout=10)
                assert not thread.is_alive()
    finally:
        checkpointer.close()
