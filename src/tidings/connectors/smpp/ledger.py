"""What left for the SMSC and what the SMSC answered, by our message id, on disk.

* ``leaving``: written before a ``submit_sm`` leaves, with keyed digests a delivery
  receipt can be matched on (``matching.py``; no number or text in clear). After a
  crash, a message that left and has no answer is *unknown*: the SMSC may or may
  not have taken it (``unknowns.py`` holds it while a receipt may tell). A message
  with no ``leaving`` row never left, and is sent at once.
* ``answers``: the SMSC's answer, written before the dispatcher hears it. A crash
  between an SMSC's ``submit_sm_resp`` and the dispatcher recording it would
  otherwise make the message go out again after the restart; with the answer here
  first, a repeated submit is answered from the ledger.

Both kinds of rows are written in groups: one transaction, so one fsync, for all
that arrive within ``GROUP_SECONDS``, the leaving rows of new submits beside the
answers of earlier ones. The file is the connector's own SQLite file: connectors
keep their own state and never touch the pipeline's database.

The file is used through the standard ``sqlite3`` module on one thread of its
own, and every operation (statement, fetch, commit, cursor closed) runs whole on
that thread. Cursors handed back to the event loop, as aiosqlite does, are reset
there when they are freed, racing the thread's next use of the same cached
statement: under load that failed writes with ``InterfaceError: bad parameter or
other API misuse``, and a failed write used to fail its dispatch batch, which ran
again after its lease and sent its messages twice.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, cast

from tidings.connectors.base import SubmitOutcome, SubmitResult
from tidings.connectors.smpp.matching import MatchKeys
from tidings.connectors.smpp.unknowns import Unknown

GROUP_SECONDS = 0.002
LOCK_WAIT_SECONDS = 5.0  # for a lock on the file held elsewhere (a backup, say)
KEEP_SECONDS = 7 * 24 * 3600.0  # longer than any dispatch retry runs
_SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    message_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, carrier_message_id TEXT,
    error_code TEXT, answered_at REAL NOT NULL)"""
_SCHEMA_LEAVING = """CREATE TABLE IF NOT EXISTS leaving (
    message_id TEXT PRIMARY KEY, match_full BLOB NOT NULL, match_addresses BLOB NOT NULL,
    left_at REAL NOT NULL)"""
_INSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)"
_INSERT_LEAVING = "INSERT OR REPLACE INTO leaving VALUES (?, ?, ?, ?)"
_SELECT_UNKNOWN = ("SELECT l.message_id, l.match_full, l.match_addresses, l.left_at "
                   "FROM leaving AS l LEFT JOIN answers AS a ON a.message_id = l.message_id "
                   "WHERE a.message_id IS NULL ORDER BY l.left_at")
_SELECT = ("SELECT message_id, outcome, carrier_message_id, error_code FROM answers "
           "WHERE message_id IN (SELECT value FROM json_each(?))")
T = TypeVar("T")
Row = tuple[str, str, str | None, str | None]
UnknownRow = tuple[str, bytes, bytes, float]


class SubmitLedger:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._pending: list[SubmitResult] = []
        self._pending_leaving: list[tuple[str, bytes, bytes, float]] = []
        self._written: asyncio.Future[None] | None = None
        self._writes: set[asyncio.Future[None]] = set()
        self.commits = 0  # group writes committed, each one fsync of the file's log

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smpp-ledger")
        self._db = await self._run(self._open)

    async def close(self) -> None:
        if self._written is not None:
            await asyncio.shield(self._written)
        await asyncio.gather(*self._writes, return_exceptions=True)
        if self._thread is None:
            return
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)
        self._thread = None

    async def known(self, message_ids: Sequence[str]) -> dict[str, SubmitResult]:
        """The stored answers among ``message_ids``."""
        if not message_ids:
            return {}
        db, ids = self._require(), json.dumps(list(message_ids))
        rows = await self._run(lambda: _fetch(db, ids))
        return {row[0]: SubmitResult(row[0], cast(SubmitOutcome, row[1]), row[2], row[3])
                for row in rows}

    async def unknown(self) -> list[Unknown]:
        """The messages that left and have no answer, oldest first."""
        db = self._require()
        rows = await self._run(lambda: _fetch_unknown(db))
        return [Unknown(message_id, MatchKeys(full, addresses), left_at)
                for message_id, full, addresses, left_at in rows]

    async def record(self, result: SubmitResult) -> None:
        """Returns once ``result`` is on disk (with the others of its group)."""
        self._require()
        self._pending.append(result)
        await self._group()

    async def leaving(self, message_id: str, keys: MatchKeys) -> None:
        """Returns once it is on disk that ``message_id`` is about to leave."""
        self._require()
        self._pending_leaving.append((message_id, keys.full, keys.addresses, time.time()))
        await self._group()

    async def _group(self) -> None:
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(GROUP_SECONDS, self._start_write)
        await asyncio.shield(self._written)

    def _start_write(self) -> None:
        batch, self._pending = self._pending, []
        leaving, self._pending_leaving = self._pending_leaving, []
        written, self._written = self._written, None
        db = self._require()
        rows = [(r.message_id, r.outcome, r.carrier_message_id, r.error_code, time.time())
                for r in batch]
        task = asyncio.ensure_future(self._run(lambda: _insert(db, rows, leaving)))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        task.add_done_callback(self._count_commit)
        task.add_done_callback(lambda done: _settle(written, done))

    def _count_commit(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            self.commits += 1

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=LOCK_WAIT_SECONDS, check_same_thread=False,
                             isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL").close()
        db.execute("PRAGMA synchronous=FULL").close()
        db.execute(_SCHEMA).close()
        db.execute(_SCHEMA_LEAVING).close()
        oldest = time.time() - KEEP_SECONDS
        db.execute("DELETE FROM answers WHERE answered_at < ?", (oldest,)).close()
        db.execute("DELETE FROM leaving WHERE left_at < ?", (oldest,)).close()
        return db

    async def _run(self, work: Callable[[], T]) -> T:
        if self._thread is None:
            raise RuntimeError("the SMPP ledger is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the SMPP ledger is not open")
        return self._db


def _insert(db: sqlite3.Connection, rows: Sequence[tuple[object, ...]],
            leaving: Sequence[tuple[object, ...]]) -> None:
    """One transaction, one fsync, on the ledger's thread."""
    cursor = db.cursor()
    try:
        cursor.execute("BEGIN")
        if leaving:
            cursor.executemany(_INSERT_LEAVING, leaving)
        if rows:
            cursor.executemany(_INSERT, rows)
        cursor.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK").close()
        raise
    finally:
        cursor.close()


def _fetch(db: sqlite3.Connection, ids: str) -> list[Row]:
    cursor = db.execute(_SELECT, (ids,))
    try:
        return cast(list[Row], cursor.fetchall())
    finally:
        cursor.close()


def _fetch_unknown(db: sqlite3.Connection) -> list[UnknownRow]:
    cursor = db.execute(_SELECT_UNKNOWN)
    try:
        return cast(list[UnknownRow], cursor.fetchall())
    finally:
        cursor.close()


def _settle(written: asyncio.Future[None] | None, done: asyncio.Future[None]) -> None:
    if written is None or written.done():
        return
    error = done.exception() if not done.cancelled() else asyncio.CancelledError()
    if error is None:
        written.set_result(None)
    else:
        written.set_exception(error)
