"""The database a functional test's server runs on (SQLite or PostgreSQL), and reading it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str  # "" = SQLite in the data dir
    admin_dsn: str = ""  # asyncpg DSN of the same database, as a superuser (for checks)


async def query_main(backend: Backend, data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run a read-only query on the pipeline's database (SQLite file or PostgreSQL)."""
    if backend.name == "sqlite":
        return sqlite_read_only(data_dir / "tidings.db", sql)
    import asyncpg

    conn = await asyncpg.connect(backend.admin_dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def sqlite_read_only(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()
