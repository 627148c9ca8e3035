"""WAL checkpoints on a thread of their own: the log is copied back into the database
file without a writer doing it in its commit, on a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from tidings.storage.db import SYSTEM, Database
from tidings.storage.sqlite_checkpoints import BACKSTOP_PAGES, WalCheckpointer, truncate_wal

BOUND_SECONDS = 10.0
ROWS = 2_000  # about 100 pages: far below the writers' own checkpoint at BACKSTOP_PAGES


async def _write_rows(db: Database) -> None:
    async with db.core(tenant=SYSTEM) as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        await conn.execute(text("INSERT INTO notes (body) VALUES (:body)"),
                           [{"body": "x" * 150} for _ in range(ROWS)])


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_the_thread_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "tidings.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await _write_rows(db)
        size_before = path.stat().st_size
        db.start_checkpoints()
        await _until(lambda: path.stat().st_size > size_before + 100_000,
                     "the rows reached the database file")
    finally:
        await db.dispose()


async def test_without_the_thread_the_rows_stay_in_the_log(tmp_path: Path) -> None:
    """The control: below the backstop no writer checkpoints, so the file stays small."""
    assert ROWS * 150 * 2 < BACKSTOP_PAGES * 4096  # the rows stay under the backstop
    path = tmp_path / "tidings.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await _write_rows(db)
        await asyncio.sleep(0.3)  # three of the thread's intervals, had it run
        assert path.stat().st_size < 100_000
        assert Path(f"{path}-wal").stat().st_size > 100_000
    finally:
        await db.dispose()


async def test_stop_ends_the_thread_and_a_missing_file_does_not_crash(
        tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(tmp_path / "missing" / "tidings.db", interval_seconds=0.01)
    checkpointer.start()
    await asyncio.sleep(0.05)
    checkpointer.stop()
    assert checkpointer.checkpoints == 0


async def test_passes_run_every_interval_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "tidings.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await _write_rows(db)
    checkpointer = WalCheckpointer(path, interval_seconds=0.01)
    checkpointer.start()
    await _until(lambda: checkpointer.checkpoints >= 3, "three passes ran")
    checkpointer.stop()
    passes = checkpointer.checkpoints
    await asyncio.sleep(0.05)
    assert checkpointer.checkpoints == passes
    await db.dispose()


def _checkpoint_threads() -> int:
    return sum(t.name == "sqlite-checkpoints" for t in threading.enumerate())


async def test_postgresql_has_no_checkpoint_thread_and_dispose_stops_sqlites(
        tmp_path: Path) -> None:
    before = _checkpoint_threads()
    postgres = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    postgres.start_checkpoints()  # nothing to do: PostgreSQL checkpoints by itself
    assert _checkpoint_threads() == before
    await postgres.dispose()

    sqlite = Database(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}")
    sqlite.start_checkpoints()
    assert _checkpoint_threads() == before + 1
    await sqlite.dispose()
    assert _checkpoint_threads() == before


async def test_an_erasing_transaction_zeroes_what_it_deletes_and_empties_the_log(
        tmp_path: Path) -> None:
    """What a scrub removes is in neither the database file nor its log afterwards,
    even with the checkpoint thread running beside it (busy: tried again)."""
    path = tmp_path / "erasing.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    db.start_checkpoints()
    try:
        await _write_rows(db)
        async with db.core(tenant=SYSTEM) as conn:
            await conn.execute(text("INSERT INTO notes (body) VALUES ('CANARY-secret-value')"))
        async with db.erasing(tenant=SYSTEM) as session:
            await session.execute(text("UPDATE notes SET body = '' "
                                       "WHERE body = 'CANARY-secret-value'"))
        wal = Path(f"{path}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert b"CANARY-secret-value" not in path.read_bytes()
    finally:
        await db.dispose()
    assert truncate_wal(path)  # nothing left to copy: at once
