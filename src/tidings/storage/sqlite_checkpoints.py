"""WAL checkpoints on a thread of their own, not inside a writer's commit.

In WAL mode SQLite copies the log back into the database file (a checkpoint)
from within the ``COMMIT`` that takes the log past ``wal_autocheckpoint``
pages. Tidings runs its statements on the event loop's thread
(``sqlite_inline``), so that copy, with its two fsyncs, stalled the loop while
the writer still held the write lock.

Here a thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` every
``interval_seconds`` on a connection of its own. The checkpoint runs inside one
SQLite call, without the GIL, so it takes the other core rather than the loop's
time; a passive checkpoint never waits for or blocks writers and readers. The
writers' own automatic checkpoint stays, at ``BACKSTOP_PAGES``, in case this
thread falls behind.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from tidings.core.logs import get_logger

log = get_logger("tidings.db")
INTERVAL_SECONDS = 0.1
# The writers' own automatic checkpoint (SQLite's default is 1,000 pages): reached only
# when the thread falls behind, so the log cannot grow without bound.
BACKSTOP_PAGES = 10_000


class WalCheckpointer:
    def __init__(self, path: Path, *, interval_seconds: float = INTERVAL_SECONDS) -> None:
        self._path = path
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # passes that ran (tests read it)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the pass in hand (a passive checkpoint takes milliseconds)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        try:
            # timeout=0: a checkpoint another connection is running is skipped, not waited for
            connection = sqlite3.connect(self._path, timeout=0, isolation_level=None)
        except sqlite3.Error:
            log.exception("sqlite_checkpointer_not_started")
            return
        try:
            while not self._stop.wait(self._interval):
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.OperationalError:
            pass  # busy: another process's checkpoint is running; the next pass goes on
        except sqlite3.Error:
            log.exception("sqlite_checkpoint_failed")


def truncate_wal(path: Path, *, timeout_seconds: float = 30.0, tries: int = 50) -> bool:
    """Checkpoint everything and truncate the log to nothing (after an erasure: the
    log's frames are page images from before it); whether it finished.

    A checkpoint running elsewhere (this process's thread, every 0.1 s) makes SQLite
    answer busy at once, without waiting: so try again, a little later, a few times.
    """
    connection = sqlite3.connect(path, timeout=timeout_seconds, isolation_level=None)
    try:
        for _ in range(tries):
            try:
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if int(busy) == 0:
                    return True
            except sqlite3.OperationalError:
                pass  # another checkpoint is running
            time.sleep(0.02)
        return False
    finally:
        connection.close()
