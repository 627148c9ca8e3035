"""Run Alembic programmatically (in a thread: env.py runs its own event loop).

Every start of a process (``tidings serve``, each CLI command) asks for the newest
revision, and nearly always the database is there already. Alembic's own answer to that
loads its environment, builds an engine and initialises its dialect on a new connection
(22 ms on SQLite, 48 ms on PostgreSQL, per start, measured 2026-12-07); reading the
version row directly and comparing it with the scripts' head costs a few. Anything else
(an older database, a new one, another target) goes to Alembic.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from tidings.core.settings import Settings

HERE = Path(__file__).parent


def alembic_config(url: str, settings: Settings | None = None) -> Config:
    """``settings`` lets a data migration reach the key store (see 0010)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    config.attributes["settings"] = settings
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return config


def upgrade(url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    if revision == "head" and _at_head(url):
        return
    command.upgrade(alembic_config(url, settings), revision)


def _at_head(url: str) -> bool:
    try:
        return stored_revision(url) == head_revision()
    except Exception:  # a shortcut only: Alembic decides, and says what is wrong
        return False


@functools.cache
def head_revision() -> str | None:
    """The newest revision among the migration scripts (read once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def stored_revision(url: str) -> str | None:
    """The revision the database says it is at; None when it has none (or is new)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).exists():
            return None
        return _stored_sqlite_revision(path)
    if parsed.get_backend_name() == "postgresql":
        return asyncio.run(_stored_postgres_revision(
            parsed.set(drivername="postgresql").render_as_string(hide_password=False)))
    return None


def _stored_sqlite_revision(path: str) -> str | None:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no version table yet, or busy: Alembic decides
        return None
    finally:
        conn.close()
    return row[0] if row else None


async def _stored_postgres_revision(dsn: str) -> str | None:
    import asyncpg  # only where PostgreSQL is used

    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        return await conn.fetchval("SELECT version_num FROM alembic_version") if exists else None
    finally:
        await conn.close()
