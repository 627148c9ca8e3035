"""Fresh PostgreSQL databases for tests, owned by a role that row-level security applies to."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_ADMIN_URL = os.environ.get("TIDINGS_TEST_POSTGRES_URL", "")
APP_ROLE = "tidings_app"  # not a superuser, no BYPASSRLS


async def _admin(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A new database ``<prefix>_<random>``: (app URL for SQLAlchemy, superuser asyncpg DSN).

    Dropped on exit. Callers skip when ``PG_ADMIN_URL`` is empty.
    """
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(
        admin,
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') "
        f"THEN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$",
        f"CREATE DATABASE {name} OWNER {APP_ROLE}"))
    userinfo, rest = admin.split("://", 1)[1].split("@", 1)
    host = rest.rsplit("/", 1)[0]
    try:
        yield (f"postgresql+asyncpg://{APP_ROLE}@{host}/{name}",
               f"postgresql://{userinfo}@{host}/{name}")
    finally:
        asyncio.run(_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
