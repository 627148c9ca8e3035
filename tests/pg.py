"""Fresh PostgreSQL databases for tests, with the roles docs/operations.md describes.

An owner role owns the database and runs the migrations; the app role (API requests)
and the system role (work across tenants) own nothing, get their rows through the
``tidings_runtime`` group, and only the system role is in ``tidings_cross_tenant``.
None of them is a superuser or has BYPASSRLS.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PG_ADMIN_URL = os.environ.get("TIDINGS_TEST_POSTGRES_URL", "")
OWNER_ROLE = "tidings_test_owner"  # owns the schema, runs `tidings migrate`
APP_ROLE = "tidings_test_app"  # TIDINGS_DATABASE_URL: tenant work only
SYSTEM_ROLE = "tidings_test_system"  # TIDINGS_SYSTEM_DATABASE_URL: across tenants
KEYS_ROLE = "tidings_test_keys"  # TIDINGS_KEYSTORE_URL: the key store, a database apart
RUNTIME_GROUP = "tidings_runtime"
CROSS_TENANT_GROUP = "tidings_cross_tenant"


@dataclass(frozen=True)
class PgDatabase:
    """One test database: a SQLAlchemy URL per role, and a superuser asyncpg DSN."""

    app_url: str
    system_url: str
    owner_url: str
    admin_dsn: str


async def run_as_admin(dsn: str, *statements: str) -> None:
    """Run ``statements`` as the superuser of ``dsn`` (an asyncpg DSN)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _create_role(role: str, options: str) -> str:
    """Made once per server; another test run may make it at the same moment."""
    return (f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} {options}; END IF; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")


ROLES = (
    _create_role(RUNTIME_GROUP, "NOLOGIN"),
    _create_role(CROSS_TENANT_GROUP, f"NOLOGIN IN ROLE {RUNTIME_GROUP}"),
    _create_role(OWNER_ROLE, f"LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {CROSS_TENANT_GROUP}"),
    _create_role(APP_ROLE, f"LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {RUNTIME_GROUP}"),
    _create_role(SYSTEM_ROLE, f"LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {CROSS_TENANT_GROUP}"),
    _create_role(KEYS_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS"),
)


def as_role(url: str, role: str) -> str:
    """The same PostgreSQL URL for another test role; any other URL unchanged."""
    for known in (OWNER_ROLE, APP_ROLE, SYSTEM_ROLE):
        if f"://{known}@" in url:
            return url.replace(f"://{known}@", f"://{role}@", 1)
    return url


def as_owner(url: str) -> str:
    """For DDL (tests that make their own tables, migrations): the owner's URL."""
    return as_role(url, OWNER_ROLE)


@contextmanager
def fresh_database(prefix: str) -> Iterator[PgDatabase]:
    """A new database ``<prefix>_<random>`` owned by the owner role; dropped on exit.

    Callers skip when ``PG_ADMIN_URL`` is empty.
    """
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_as_admin(admin, *ROLES, f"CREATE DATABASE {name} OWNER {OWNER_ROLE}"))
    userinfo, rest = admin.split("://", 1)[1].split("@", 1)
    host = rest.rsplit("/", 1)[0]
    try:
        yield PgDatabase(app_url=f"postgresql+asyncpg://{APP_ROLE}@{host}/{name}",
                         system_url=f"postgresql+asyncpg://{SYSTEM_ROLE}@{host}/{name}",
                         owner_url=f"postgresql+asyncpg://{OWNER_ROLE}@{host}/{name}",
                         admin_dsn=f"postgresql://{userinfo}@{host}/{name}")
    finally:
        asyncio.run(run_as_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextmanager
def fresh_keystore(prefix: str) -> Iterator[str]:
    """A database for the key store, owned by its own role, that no other role may
    connect to (docs/operations.md, the key store on PostgreSQL); its URL."""
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_as_admin(admin, *ROLES, f"CREATE DATABASE {name} OWNER {KEYS_ROLE}",
                             f"REVOKE ALL ON DATABASE {name} FROM PUBLIC"))
    host = admin.split("://", 1)[1].split("@", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{KEYS_ROLE}@{host}/{name}"
    finally:
        asyncio.run(run_as_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def role_settings(database_url: str) -> dict[str, str]:
    """The settings naming the system and owner roles beside an app URL (none on SQLite)."""
    if not database_url.startswith("postgresql"):
        return {}
    return {"system_database_url": as_role(database_url, SYSTEM_ROLE),
            "migrate_database_url": as_owner(database_url)}


# Children before the tables their foreign keys point at; a self-reference does not order.
_FOREIGN_KEYS = """
SELECT child.relname, parent.relname FROM pg_constraint c
JOIN pg_class child ON child.oid = c.conrelid
JOIN pg_class parent ON parent.oid = c.confrelid
WHERE c.contype = 'f' AND c.conrelid <> c.confrelid
"""


def deletion_order(tables: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    """``tables`` with every child before its parents; None if the keys form a cycle."""
    parents = {table: {p for c, p in edges if c == table and p in tables} for table in tables}
    ordered: list[str] = []
    remaining = set(tables)
    while remaining:
        # A table may go once no remaining table still points at it.
        free = sorted(t for t in remaining if not any(t in parents[o] for o in remaining))
        if not free:
            return None
        ordered.extend(free)
        remaining.difference_update(free)
    return ordered


async def empty_database(owner_url: str) -> None:
    """Every row of every table gone, sequences back at 1, as the owner.

    A ``DELETE`` per table, children first: about a tenth of what one ``TRUNCATE`` of
    every table costs (27 tables: 9 ms against 112 ms), which a test on PostgreSQL
    otherwise paid before it started. The owner sets the cross-tenant mode the
    row-level policies allow its role, so that forced policies hide nothing from it.
    """
    import asyncpg

    conn = await asyncpg.connect(owner_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = [row[0] for row in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")]
        order = deletion_order(tables, [tuple(row) for row in await conn.fetch(_FOREIGN_KEYS)])
        sequences = [row[0] for row in await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")]
        async with conn.transaction():
            if order is None:
                await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                return
            await conn.execute("SELECT set_config('tidings.tenant_id', '*system*', true)")
            for table in order:
                await conn.execute(f'DELETE FROM "{table}"')
            for sequence in sequences:
                await conn.execute("SELECT setval($1::regclass, 1, false)", sequence)
    finally:
        await conn.close()
