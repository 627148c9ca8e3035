"""PostgreSQL row-level security: the second wall behind the tenant-scoped queries.

The app connects as a role that is neither superuser nor BYPASSRLS (see tests/pg.py), and
every table with a ``tenant_id`` must force a policy keyed on ``tidings.tenant_id``. Only
the system role (a member of ``tidings_cross_tenant``) may cross tenants; the app role
cannot, whatever it sets, and neither runtime role owns or alters anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import Tenant, make_tenant
from tests.pg import APP_ROLE, OWNER_ROLE, SYSTEM_ROLE
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM, set_tenant_setting

pytestmark = pytest.mark.postgres

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}
RLS_REFUSAL = "row-level security"
REFUSED = "permission denied|must be owner|must have admin option"
CROSS_TENANT_TEST = "pg_has_role('tidings_cross_tenant'::name, 'MEMBER'::text)"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite has no row-level security."""
    return postgres_url


async def scalar(rt: Runtime, tenant: str, sql: str, **params: Any) -> Any:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        return await session.scalar(text(sql), params)


def message_row(message_id: str, tenant: str) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {"id": message_id, "tenant_id": tenant, "direction": "outbound", "channel": "sms",
            "status": "queued", "to_enc": b"x", "to_index": "i", "from_enc": b"x",
            "body_enc": b"x", "encoding": "GSM-7", "num_segments": 1, "event_count": 1,
            "created_at": now, "updated_at": now}


INSERT_MESSAGE = text(
    "INSERT INTO messages (id, tenant_id, direction, channel, status, to_enc, to_index, "
    "from_enc, body_enc, encoding, num_segments, event_count, created_at, updated_at) "
    "VALUES (:id, :tenant_id, :direction, :channel, :status, :to_enc, :to_index, :from_enc, "
    ":body_enc, :encoding, :num_segments, :event_count, :created_at, :updated_at)")


async def test_the_app_role_is_subject_to_row_level_security(rt: Runtime) -> None:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = (await session.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))).one()
    assert tuple(row) == (False, False)


async def test_every_tenant_table_forces_a_tenant_policy(rt: Runtime) -> None:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        tables = set((await session.scalars(text(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t "
            "  ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' "
            "  AND t.table_type = 'BASE TABLE'"))).all())
        # Guard against a vacuous pass: these certainly carry tenant data.
        assert {"messages", "message_events", "api_keys", "phone_numbers", "audit_events",
                "webhook_deliveries", "webhook_attempts", "idempotency_keys",
                "jobs"} <= tables
        problems = []
        for table in sorted(tables | {"accounts"}):
            flags = (await session.execute(text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE oid = to_regclass(:name)"), {"name": f"public.{table}"})).one()
            if not flags[0]:
                problems.append(f"{table}: row-level security is not enabled")
            if not flags[1]:
                problems.append(f"{table}: row-level security is not forced on the owner")
            policies = (await session.execute(text(
                "SELECT policyname, cmd, permissive, qual, with_check FROM pg_policies "
                "WHERE schemaname = 'public' AND tablename = :t"), {"t": table})).all()
            if not policies:
                problems.append(f"{table}: no policy")
            for name, cmd, permissive, qual, with_check in policies:
                if cmd == "ALL" and "tidings.tenant_id" not in (with_check or ""):
                    problems.append(f"{table}.{name}: writes are not checked per tenant")
                if "tidings.tenant_id" not in (qual or "") and permissive == "PERMISSIVE":
                    problems.append(f"{table}.{name}: reads are not filtered per tenant")
                for clause in (qual, with_check):
                    if "*system*" in (clause or "") and CROSS_TENANT_TEST not in clause:
                        problems.append(f"{table}.{name}: any role may act as the system")
    assert problems == []


async def test_a_tenant_sees_only_its_rows_without_a_where_clause(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    for tenant, n in ((acme, 2), (globex, 3)):
        for _ in range(n):
            response = await client.post("/v1/messages", headers=tenant.headers, json=SEND)
            assert response.status_code == 201, response.text

    assert await scalar(rt, SYSTEM, "SELECT count(*) FROM messages") == 5
    assert await scalar(rt, acme.id, "SELECT count(*) FROM messages") == 2
    assert await scalar(rt, globex.id, "SELECT count(*) FROM messages") == 3
    assert await scalar(rt, acme.id, "SELECT count(DISTINCT tenant_id) FROM messages") == 1
    assert await scalar(rt, acme.id, "SELECT min(tenant_id) FROM messages") == acme.id
    # The same holds for the tables that follow a message around.
    for table in ("message_events", "jobs", "audit_events", "api_keys"):
        assert await scalar(rt, acme.id, f"SELECT count(*) FROM {table} "
                                         "WHERE tenant_id <> :me", me=acme.id) == 0
        assert await scalar(rt, acme.id, f"SELECT count(*) FROM {table}") > 0
    # An explicit WHERE naming Globex finds nothing either.
    assert await scalar(rt, acme.id, "SELECT count(*) FROM messages WHERE tenant_id = :g",
                        g=globex.id) == 0
    # No tenant set at all: nothing.
    async with rt.db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM messages")) == 0
        assert await conn.scalar(text("SELECT count(*) FROM accounts")) == 0


async def test_accounts_show_only_themselves_and_their_children(
        rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    child = await make_tenant(rt, "Acme child", parent=acme.id)
    grandchild = await make_tenant(rt, "Acme grandchild", parent=child.id)
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        visible = set((await session.scalars(text("SELECT id FROM accounts"))).all())
    assert visible == {acme.id, child.id}
    assert grandchild.id not in visible
    assert globex.id not in visible


async def test_inserting_a_row_for_another_tenant_is_refused(
        rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    # Control: the very same statement for Acme's own tenant works.
    async with rt.db.transaction(tenant=acme.id) as session:
        await session.execute(INSERT_MESSAGE, message_row("msg_rlsown", acme.id))

    with pytest.raises(DBAPIError, match=RLS_REFUSAL):
        async with rt.db.transaction(tenant=acme.id) as session:
            await session.execute(INSERT_MESSAGE, message_row("msg_rlsforeign", globex.id))
    with pytest.raises(DBAPIError, match=RLS_REFUSAL):
        async with rt.db.transaction(tenant=acme.id) as session:
            await session.execute(text(
                "INSERT INTO phone_numbers (id, tenant_id, number_enc, number_index, "
                "created_at) VALUES ('num_rls', :t, 'x', 'i', now())"), {"t": globex.id})

    assert await scalar(rt, SYSTEM, "SELECT count(*) FROM messages") == 1
    assert await scalar(rt, SYSTEM, "SELECT count(*) FROM messages WHERE tenant_id = :g",
                        g=globex.id) == 0
    assert await scalar(rt, SYSTEM, "SELECT count(*) FROM phone_numbers") == 0


async def test_updates_cannot_reach_or_move_rows_across_tenants(
        rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(INSERT_MESSAGE, message_row("msg_rlsacme", acme.id))
        await session.execute(INSERT_MESSAGE, message_row("msg_rlsglobex", globex.id))

    async with rt.db.transaction(tenant=acme.id) as session:
        touched = await session.execute(text("UPDATE messages SET status = 'failed'"))
        deleted = await session.execute(text(
            "DELETE FROM messages WHERE tenant_id = :g"), {"g": globex.id})
    assert (touched.rowcount, deleted.rowcount) == (1, 0)  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match=RLS_REFUSAL):
        async with rt.db.transaction(tenant=acme.id) as session:
            await session.execute(text("UPDATE messages SET tenant_id = :g WHERE id = :id"),
                                  {"g": globex.id, "id": "msg_rlsacme"})

    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = dict((await session.execute(text(
            "SELECT id, status || ':' || tenant_id FROM messages"))).all())
    assert rows == {"msg_rlsacme": f"failed:{acme.id}", "msg_rlsglobex": f"queued:{globex.id}"}


# ----------------------------------------------------------------- the roles (migration 0013)

async def app_role_sees(rt: Runtime, setting: str, sql: str) -> Any:
    """What the app role (TIDINGS_DATABASE_URL) reads with ``tidings.tenant_id`` set."""
    async with rt.db.engine.begin() as conn:
        await set_tenant_setting(conn, setting)
        return await conn.scalar(text(sql))


async def app_role_inserts_as_system(rt: Runtime, row: dict[str, Any]) -> None:
    async with rt.db.engine.begin() as conn:
        await set_tenant_setting(conn, SYSTEM)
        await conn.execute(INSERT_MESSAGE, row)


async def test_the_app_role_asking_for_the_system_view_sees_no_other_tenant(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    for tenant, n in ((acme, 2), (globex, 3)):
        for _ in range(n):
            response = await client.post("/v1/messages", headers=tenant.headers, json=SEND)
            assert response.status_code == 201, response.text

    for table in ("messages", "accounts", "api_keys", "jobs", "audit_events"):
        assert await app_role_sees(rt, SYSTEM, f"SELECT count(*) FROM {table}") == 0, table
    assert await app_role_sees(rt, acme.id, "SELECT count(*) FROM messages") == 2
    # Writing as the system is refused too.
    with pytest.raises(DBAPIError, match=RLS_REFUSAL):
        await app_role_inserts_as_system(rt, message_row("msg_rlssystem", globex.id))
    # The cross-tenant role sees every tenant, and only the tenant it acts for otherwise.
    assert await scalar(rt, SYSTEM, "SELECT count(*) FROM messages") == 5
    async with rt.db.system_engine.begin() as conn:
        await set_tenant_setting(conn, acme.id)
        assert await conn.scalar(text("SELECT count(*) FROM messages")) == 2


@pytest.mark.parametrize("statement", [
    "ALTER TABLE messages DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE messages NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY tenant_isolation ON messages",
    "ALTER POLICY tenant_isolation ON messages USING (true)",
    "CREATE POLICY everything ON messages USING (true)",
    "ALTER TABLE messages ADD COLUMN leak text",
    f"SET ROLE {OWNER_ROLE}",
    f"GRANT tidings_cross_tenant TO {APP_ROLE}",
    "CREATE TABLE loot (id text)",
    "UPDATE alembic_version SET version_num = '0001'",
])
@pytest.mark.parametrize("engine", ["app", "system"])
async def test_the_runtime_roles_cannot_change_the_schema_or_their_rights(
        rt: Runtime, acme: Tenant, engine: str, statement: str) -> None:
    connect = rt.db.engine if engine == "app" else rt.db.system_engine
    with pytest.raises(DBAPIError, match=REFUSED):
        async with connect.begin() as conn:
            await conn.execute(text(statement))
    async with connect.begin() as conn:
        owned = await conn.scalar(text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND pg_has_role(c.relowner, 'MEMBER')"))
    assert owned == 0
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        flags = (await session.execute(text(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE oid = 'messages'::regclass"))).one()
        policies = await session.scalar(text(
            "SELECT count(*) FROM pg_policies WHERE tablename = 'messages'"))
    assert (tuple(flags), policies) == ((True, True), 1)


@pytest.mark.parametrize("statement", [
    "SET ROLE tidings_cross_tenant",
    f"SET ROLE {SYSTEM_ROLE}",
    "GRANT tidings_cross_tenant TO CURRENT_USER",
])
async def test_the_app_role_cannot_become_the_cross_tenant_role(
        rt: Runtime, statement: str) -> None:
    with pytest.raises(DBAPIError, match=REFUSED):
        async with rt.db.engine.begin() as conn:
            await conn.execute(text(statement))
    async with rt.db.engine.begin() as conn:
        assert await conn.scalar(text(
            "SELECT pg_has_role('tidings_cross_tenant', 'MEMBER')")) is False
