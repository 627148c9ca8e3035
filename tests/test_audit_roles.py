"""AUD-2 on PostgreSQL: the runtime roles add audit events and seal them, and can do
nothing else to one (migration 0021). Column privileges refuse a change of any column but
the chain's, and every delete; a trigger refuses re-sealing a sealed event. The schema's
owner, who could drop the trigger, is who tampers in the tests (tests/test_audit.py).
SQLite has no roles: the keyed chain alone shows a change there."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import TEST_ACTOR, Tenant
from tests.pg import APP_ROLE, SYSTEM_ROLE
from tests.test_audit import TIDINGS, add_events, chain, execute, recompute_without_key
from tidings.audit.legacy import key_legacy_chains
from tidings.audit.service import audit_row, record, seal_pending
from tidings.audit.verify import verify
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM, set_tenant_setting

pytestmark = pytest.mark.postgres

PRIVILEGE = "permission denied for table audit_events"
SEALED = "is sealed: it cannot change"
ONLY_SEALING = "may only be sealed"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite has no roles to hold to this."""
    return postgres_url


@pytest.fixture
async def events(rt: Runtime, acme: Tenant) -> tuple[int, int]:
    """Acme's chain: four sealed events, then one not sealed yet; (a sealed id, that one)."""
    await add_events(rt, acme, 2)
    await seal_pending(rt.db, rt.audit_chain)
    await add_events(rt, acme, 1)
    rows = await chain(rt, acme.id)
    assert [e.seq for e in rows] == [1, 2, 3, 4, None]
    return rows[1].id, rows[-1].id


@asynccontextmanager
async def connected_as(rt: Runtime, role: str, tenant: str) -> AsyncIterator[AsyncConnection]:
    """A transaction of the app role (acting for ``tenant``) or of the system role."""
    engine, acting = (rt.db.engine, tenant) if role == "app" else (rt.db.system_engine, SYSTEM)
    async with engine.begin() as conn:
        await set_tenant_setting(conn, acting)
        yield conn


ROLES = {"app": APP_ROLE, "system": SYSTEM_ROLE}

REFUSALS = [
    # A column the sealer never writes: no privilege at all.
    ("UPDATE audit_events SET action = 'read' WHERE id = :sealed", PRIVILEGE),
    ("UPDATE audit_events SET fields = '[]' WHERE id = :pending", PRIVILEGE),
    ("UPDATE audit_events SET actor_id = 'mallory', hash = :h WHERE id = :pending", PRIVILEGE),
    ("DELETE FROM audit_events WHERE id = :sealed", PRIVILEGE),
    ("DELETE FROM audit_events WHERE id = :pending", PRIVILEGE),
    ("TRUNCATE audit_events", PRIVILEGE),
    # The chain's columns, which the sealer writes once: never again.
    ("UPDATE audit_events SET hash = :h WHERE id = :sealed", SEALED),
    ("UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL WHERE id = :sealed",
     SEALED),
    ("UPDATE audit_events SET seq = seq + 100 WHERE id = :sealed", SEALED),
    # Half a seal would leave an event neither sealed nor sealable.
    ("UPDATE audit_events SET seq = 99 WHERE id = :pending", ONLY_SEALING),
]


@pytest.mark.parametrize(("statement", "refusal"), REFUSALS)
@pytest.mark.parametrize("role", ["app", "system"])
async def test_aud_2_the_runtime_roles_can_neither_change_nor_delete_an_audit_event(
        rt: Runtime, acme: Tenant, events: tuple[int, int], role: str, statement: str,
        refusal: str) -> None:
    sealed, pending = events
    before = [(e.id, e.action, e.actor_id, e.fields, e.seq, e.hash)
              for e in await chain(rt, acme.id)]
    with pytest.raises(DBAPIError, match=refusal):
        async with connected_as(rt, role, acme.id) as conn:
            await conn.execute(text(statement), {"sealed": sealed, "pending": pending,
                                                 "h": "f" * 64})
    after = [(e.id, e.action, e.actor_id, e.fields, e.seq, e.hash)
             for e in await chain(rt, acme.id)]
    assert after == before
    assert (await verify(rt.db, rt.audit_chain)).ok


@pytest.mark.parametrize("role", ["app", "system"])
async def test_aud_2_the_grants_are_insert_select_and_the_chain_columns(
        rt: Runtime, role: str) -> None:
    grants = {
        "SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False,
        "TRUNCATE": False,
    }
    async with connected_as(rt, role, SYSTEM) as conn:
        held = {privilege: await conn.scalar(text(
            "SELECT has_table_privilege(:role, 'audit_events', :privilege)"),
            {"role": ROLES[role], "privilege": privilege}) for privilege in grants}
        columns = dict((await conn.execute(text(
            "SELECT column_name, has_column_privilege(:role, 'audit_events', column_name, "
            "'UPDATE') FROM information_schema.columns WHERE table_name = 'audit_events'"),
            {"role": ROLES[role]})).all())
    assert held == grants
    assert {name for name, may in columns.items() if may} == {"seq", "prev_hash", "hash"}


@pytest.mark.parametrize("role", ["app", "system"])
async def test_aud_2_inserting_and_sealing_still_work_and_verify_passes(
        rt: Runtime, acme: Tenant, events: tuple[int, int], role: str) -> None:
    _, pending = events
    # The app role's engine serves a tenant's transaction, the system role's SYSTEM's.
    async with rt.db.transaction(tenant=acme.id if role == "app" else SYSTEM) as session:
        await record(session, [audit_row(tenant=acme.id, actor=TEST_ACTOR, action="update",
                                         table="accounts", row_id=acme.id, fields=["name"],
                                         now=rt.clock.now())])
    assert await seal_pending(rt.db, rt.audit_chain) == 2  # the system role seals
    rows = await chain(rt, acme.id)
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5, 6]
    assert next(e for e in rows if e.id == pending).seq == 5
    report = await verify(rt.db, rt.audit_chain)
    assert (report.ok, report.sealed_events, report.unsealed_events) == (True, 6, 0)
    result = await asyncio.to_thread(verify_with_the_cli, rt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def verify_with_the_cli(rt: Runtime) -> subprocess.CompletedProcess[str]:
    """``tidings audit verify`` with the runtime roles' URLs, as a server's host runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_DATA_DIR=str(rt.settings.data_dir),
               TIDINGS_DATABASE_URL=rt.settings.database_url,
               TIDINGS_SYSTEM_DATABASE_URL=rt.settings.system_database_url)
    return subprocess.run([str(TIDINGS), "audit", "verify"], env=env, capture_output=True,
                          text=True, timeout=100, check=False)


async def test_aud_2_a_chain_sealed_before_keying_is_resealed_by_the_owner_only(
        rt: Runtime, acme: Tenant, events: tuple[int, int]) -> None:
    """Re-sealing rewrites sealed events: the runtime roles are refused, with the way out
    named; the owner (``TIDINGS_MIGRATE_DATABASE_URL``) does it."""
    await recompute_without_key(rt, acme.id)  # as the sealer of earlier versions left it
    async with rt.vault.keystore.begin() as conn:
        await conn.execute(text("DELETE FROM audit_checkpoints"))
    with pytest.raises(RuntimeError, match="TIDINGS_MIGRATE_DATABASE_URL"):
        await key_legacy_chains(rt.db, rt.audit_chain, now=rt.clock.now())
    assert not (await verify(rt.db, rt.audit_chain)).ok  # left as it was
    assert await key_legacy_chains(rt.db, rt.audit_chain, now=rt.clock.now(),
                                   owner_url=rt.settings.migrate_database_url) == [acme.id]
    assert (await verify(rt.db, rt.audit_chain)).ok


async def test_aud_2_the_owner_still_can_tamper_and_verify_sees_it(
        rt: Runtime, acme: Tenant, events: tuple[int, int]) -> None:
    """The guard spares the owner, who could drop it: the chain is what shows its edits."""
    sealed, _ = events
    assert await execute(rt, "UPDATE audit_events SET action = 'read' WHERE id = :id",
                         id=sealed) == 1
    report = await verify(rt.db, rt.audit_chain)
    assert report.problems == [f"{acme.id}: event #2 (id {sealed}) was altered"]

