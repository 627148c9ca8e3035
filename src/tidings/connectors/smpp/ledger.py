"""What the SMSC answered, by our message id, on disk before the dispatcher hears it.

A crash between an SMSC's ``submit_sm_resp`` and the dispatcher recording it would
otherwise make the message go out again after the restart. With the answer here
first, a repeated submit is answered from the ledger, so only submits whose
answer never came (in flight at the crash) can be sent twice: SMPP cannot tell
whether the SMSC took those.

Answers are written in groups (one fsync for all that arrive within
``GROUP_SECONDS``) in the connector's own SQLite file: connectors keep their own
state and never touch the pipeline's database.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import aiosqlite

from tidings.connectors.base import SubmitOutcome, SubmitResult

GROUP_SECONDS = 0.002
KEEP_SECONDS = 7 * 24 * 3600.0  # longer than any dispatch retry runs
_SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    message_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, carrier_message_id TEXT,
    error_code TEXT, answered_at REAL NOT NULL)"""


class SubmitLedger:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        self._pending: list[SubmitResult] = []
        self._written: asyncio.Future[None] | None = None

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.execute(_SCHEMA)
        await self._db.execute("DELETE FROM answers WHERE answered_at < ?",
                               (time.time() - KEEP_SECONDS,))
        await self._db.commit()

    async def close(self) -> None:
        if self._written is not None:
            await asyncio.shield(self._written)
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def known(self, message_ids: Sequence[str]) -> dict[str, SubmitResult]:
        """The stored answers among ``message_ids``."""
        if not message_ids:
            return {}
        rows = await self._require().execute_fetchall(
            "SELECT message_id, outcome, carrier_message_id, error_code FROM answers "
            "WHERE message_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(message_ids)),))
        return {row[0]: SubmitResult(row[0], cast(SubmitOutcome, row[1]), row[2], row[3])
                for row in rows}

    async def record(self, result: SubmitResult) -> None:
        """Returns once ``result`` is on disk (with the others of its group)."""
        self._pending.append(result)
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(GROUP_SECONDS, self._start_write)
        await asyncio.shield(self._written)

    def _start_write(self) -> None:
        batch, self._pending = self._pending, []
        written, self._written = self._written, None
        task = asyncio.ensure_future(self._write(batch))
        task.add_done_callback(lambda done: _settle(written, done))

    async def _write(self, batch: list[SubmitResult]) -> None:
        db = self._require()
        await db.executemany(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
            [(r.message_id, r.outcome, r.carrier_message_id, r.error_code, time.time())
             for r in batch])
        await db.commit()

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the SMPP ledger is not open")
        return self._db


def _settle(written: asyncio.Future[None] | None, done: asyncio.Future[None]) -> None:
    if written is None or written.done():
        return
    error = done.exception() if not done.cancelled() else asyncio.CancelledError()
    if error is None:
        written.set_result(None)
    else:
        written.set_exception(error)
