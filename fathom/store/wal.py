"""SQLite WAL checkpoints in a thread of their own, not in whichever commit crosses SQLite's limit.

By default SQLite copies the write-ahead log back into the database file (a *checkpoint*, with
an fsync of each file) inside the commit that takes the log past 1,000 pages. A research run
commits a durable checkpoint or two per round, so about one round in thirteen paid 10–20 ms more
for it (bench/round_overhead.py). Fathom's connections to a database file turn that off
(``PRAGMA wal_autocheckpoint = 0``) and :class:`WalCheckpointer` runs the checkpoints instead:
``interval_s`` after a commit (one for all the commits meanwhile), on a connection of its own,
in ``PASSIVE`` mode, which never waits for readers or writers and never holds them up. The log
is still reused from its start once everything in it is copied, and the last connection to
close checkpoints and removes it, as before. Another process with the default setting
checkpoints the shared log as usual.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import suppress

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.5
IDLE_S = 5.0


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite file at ``path`` after commits, in a daemon thread.

    Call :meth:`committed` after each write transaction (it only sets a flag), and :meth:`close`
    when the database is closed. The thread starts on a commit and ends after ``idle_s`` without
    one (so a database nobody closes leaves no thread behind for long).
    """

    def __init__(self, path: str, *, interval_s: float = DEFAULT_INTERVAL_S, idle_s: float = IDLE_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.idle_s = idle_s
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Note a commit: a checkpoint follows ``interval_s`` later (one for all commits meanwhile)."""
        self._wanted.set()  # before looking at the thread: one about to end for idleness sees it
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # none yet, ended, or a forked child
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="fathom-wal-checkpoint", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
            self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while self._next():
                # Wait first: the commits of a burst (a run's start, a round) share one
                # checkpoint, which then does not compete with them for the CPU either.
                if self._stopping.wait(self.interval_s):
                    return
                try:
                    if conn is None:
                        # timeout 0: a passive checkpoint takes no lock it would wait for
                        conn = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the file went away, or is not in WAL mode (yet)
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
                    if conn is not None:
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                with suppress(sqlite3.Error):
                    conn.close()

    def _next(self) -> bool:
        """Wait for a commit; False to end the thread (closing, or idle for ``idle_s``)."""
        while not self._wanted.wait(self.idle_s):
            with self._lock:
                if not self._wanted.is_set():  # still nothing: end, and let the next commit start one
                    if self._thread is threading.current_thread():
                        self._thread = None
                    return False
        self._wanted.clear()
        return not self._stopping.is_set()
