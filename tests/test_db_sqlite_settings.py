"""Every SQLite connection of a ``Database`` is set up alike: the settings that make a
2xx durable (WAL, a full sync at each commit), foreign keys, and the read tuning."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from tidings.storage.db import SQLITE_CACHE_KIB, SQLITE_MMAP_BYTES, SYSTEM, Database
from tidings.storage.sqlite_checkpoints import BACKSTOP_PAGES

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL


async def _pragma(db: Database, name: str, *, write: bool) -> object:
    async with db.core(tenant=SYSTEM, write=write) as conn:
        return (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()


async def test_every_connection_is_durable_and_tuned(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}")
    try:
        for write in (True, False):  # a write transaction, then a read
            assert await _pragma(db, "journal_mode", write=write) == "wal"
            assert await _pragma(db, "synchronous", write=write) == FULL
            assert await _pragma(db, "foreign_keys", write=write) == 1
            assert await _pragma(db, "mmap_size", write=write) == SQLITE_MMAP_BYTES
            assert await _pragma(db, "cache_size", write=write) == -SQLITE_CACHE_KIB
            assert await _pragma(db, "wal_autocheckpoint", write=write) == BACKSTOP_PAGES
    finally:
        await db.dispose()
