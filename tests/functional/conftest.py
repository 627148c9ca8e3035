"""Fixtures for the functional tests: a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("TIDINGS_TEST_POSTGRES_URL", "")
APP_ROLE = "tidings_app"  # as in tests/conftest.py: row-level security applies to it


async def _pg_admin(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh database ``func_<random>`` (app URL, admin DSN), dropped afterwards."""
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"func_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(
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
        asyncio.run(_pg_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
