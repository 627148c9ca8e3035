"""CON-1 on PostgreSQL: consent events are append-only for the roles the running
processes use (migration 0028's trigger). The app role may add and read events and
nothing else; the system role may not change one either, but may delete an account's
events, which is how a terminated account is purged. The schema's owner, who could drop
the trigger, is not held. SQLite has no roles: there, only the code has no update or
delete of an event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Tenant
from tests.consents.helpers import record, stored
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM, set_tenant_setting

pytestmark = pytest.mark.postgres

APPEND_ONLY = "consent events are append-only"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite has no roles to hold to this."""
    return postgres_url


@asynccontextmanager
async def connected_as(rt: Runtime, role: str, tenant: str) -> AsyncIterator[AsyncConnection]:
    """A transaction of the app role (acting for ``tenant``) or of the system role."""
    engine, acting = (rt.db.engine, tenant) if role == "app" else (rt.db.system_engine, SYSTEM)
    async with engine.begin() as conn:
        await set_tenant_setting(conn, acting)
        yield conn


REFUSED = [
    ("app", "UPDATE consent_events SET mechanism = 'opt_in' WHERE id = :id"),
    ("app", "UPDATE consent_events SET captured_at = captured_at - interval '1 day'"),
    ("app", "DELETE FROM consent_events WHERE id = :id"),
    ("app", "DELETE FROM consent_events"),
    ("system", "UPDATE consent_events SET mechanism = 'opt_in' WHERE id = :id"),
    ("system", "UPDATE consent_events SET evidence_ref_enc = NULL"),
]


@pytest.mark.parametrize(("role", "statement"), REFUSED)
async def test_con_1_the_runtime_roles_cannot_change_and_the_app_role_cannot_delete(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str,
        statement: str) -> None:
    made = await record(client, acme, mechanism="opt_out")
    before = await stored(rt)
    with pytest.raises(DBAPIError, match=APPEND_ONLY):
        async with connected_as(rt, role, acme.id) as conn:
            await conn.execute(text(statement), {"id": made["id"]})
    assert await stored(rt) == before


async def test_con_1_the_app_role_may_still_add_and_read_events(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await record(client, acme)
    async with connected_as(rt, "app", acme.id) as conn:
        privileges = {p: await conn.scalar(text(
            "SELECT has_table_privilege(current_user, 'consent_events', :p)"), {"p": p})
            for p in ("SELECT", "INSERT", "TRUNCATE")}
        seen = await conn.scalar(text("SELECT count(*) FROM consent_events"))
    assert privileges == {"SELECT": True, "INSERT": True, "TRUNCATE": False}
    assert seen == 1
