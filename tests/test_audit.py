"""The tamper-evident audit trail: sealing, verification, and the ``tidings audit`` CLI."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from tests.conftest import TEST_ACTOR, Tenant, make_tenant
from tidings.accounts.service import do_create_api_key, do_update_account, get_account
from tidings.audit.models import AuditEvent
from tidings.audit.service import GENESIS, event_digest, seal_pending, verify
from tidings.clock import FakeClock
from tidings.db import SYSTEM
from tidings.runtime import Runtime, close_runtime, open_runtime
from tidings.settings import Settings

TIDINGS = Path(sys.executable).with_name("tidings")


async def add_events(rt: Runtime, tenant: Tenant, count: int) -> None:
    """More audited writes for ``tenant`` (provisioning already left two)."""
    for i in range(count):
        async with rt.db.transaction(tenant=tenant.id) as session:
            await do_create_api_key(session, tenant=tenant.id, name=f"key {i}",
                                    actor=TEST_ACTOR, now=rt.clock.now())


async def chain(rt: Runtime, tenant: str) -> list[AuditEvent]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant)
                                     .order_by(AuditEvent.seq))
        return list(rows.all())


async def execute(rt: Runtime, sql: str, **params: Any) -> int:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        result = await session.execute(text(sql), params)
        return int(result.rowcount)  # type: ignore[attr-defined]


@pytest.fixture
async def sealed(rt: Runtime, acme: Tenant, globex: Tenant) -> tuple[Tenant, Tenant]:
    """Acme with five sealed events, Globex with four."""
    await add_events(rt, acme, 3)
    await add_events(rt, globex, 2)
    assert await seal_pending(rt.db) == 9
    return acme, globex


async def test_seal_then_verify_is_ok(rt: Runtime, clock: FakeClock, acme: Tenant,
                                      globex: Tenant) -> None:
    await add_events(rt, acme, 2)
    before = await verify(rt.db)
    assert (before.ok, before.sealed_events, before.unsealed_events) == (True, 0, 6)

    assert await seal_pending(rt.db) == 6
    report = await verify(rt.db)
    assert report.ok, report.problems
    assert (report.tenants, report.sealed_events, report.unsealed_events) == (2, 6, 0)
    assert await seal_pending(rt.db) == 0  # nothing left to seal

    # New events extend the existing chain rather than starting another.
    clock.advance(60)
    async with rt.db.transaction(tenant=acme.id) as session:
        account = await get_account(session, account_id=acme.id)
        await do_update_account(session, account=account, actor=TEST_ACTOR,
                                now=clock.now(), name="Acme Renamed")
    assert (await verify(rt.db)).unsealed_events == 1
    assert await seal_pending(rt.db) == 1
    events = await chain(rt, acme.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].prev_hash == events[-2].hash
    assert events[-1].fields == ["name"]
    report = await verify(rt.db)
    assert report.ok
    assert report.sealed_events == 7


async def test_chains_link_each_event_to_the_one_before(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    events = await chain(rt, acme.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    prev = GENESIS
    for event in events:
        assert event.prev_hash == prev
        assert event.hash == event_digest(prev, event, event.seq)
        prev = event.hash


@pytest.mark.parametrize(("column", "value"), [
    ("fields", '["name", "secret_value"]'),
    ("actor_type", "api_key"),
    ("actor_id", "someone-else"),
    ("action", "delete"),
    ("table_name", "messages"),
    ("row_id", "key_forged"),
    ("prev_hash", "f" * 64),
    ("hash", "0" * 64),
])
async def test_tampering_a_sealed_row_is_reported(
        rt: Runtime, sealed: tuple[Tenant, Tenant], column: str, value: str) -> None:
    acme, globex = sealed
    original = (await chain(rt, acme.id))[2]
    assert str(getattr(original, column)) != value  # a real change, not a no-op
    changed = await execute(rt, f"UPDATE audit_events SET {column} = :v "
                                "WHERE tenant_id = :t AND seq = 3", v=value, t=acme.id)
    assert changed == 1
    report = await verify(rt.db)
    assert not report.ok
    assert report.problems == [f"{acme.id}: event #3 (id {original.id}) was altered"]
    assert (await verify(rt.db, tenant=globex.id)).ok
    assert not (await verify(rt.db, tenant=acme.id)).ok


async def test_tampering_the_time_of_an_event_is_reported(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    original = (await chain(rt, acme.id))[1]
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(update(AuditEvent).where(AuditEvent.id == original.id)
                              .values(created_at=original.created_at + timedelta(hours=1)))
    report = await verify(rt.db)
    assert [p.split(":")[0] for p in report.problems] == [acme.id]
    assert "event #2" in report.problems[0]


async def test_rehashing_a_tampered_row_is_still_caught_by_the_next(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    target = (await chain(rt, acme.id))[1]
    await execute(rt, "UPDATE audit_events SET actor_id = 'mallory' WHERE id = :id",
                  id=target.id)
    forged = (await chain(rt, acme.id))[1]
    await execute(rt, "UPDATE audit_events SET hash = :h WHERE id = :id",
                  h=event_digest(forged.prev_hash or "", forged, forged.seq), id=target.id)
    report = await verify(rt.db)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{acme.id}: event #3 ")


async def test_deleting_a_middle_event_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    assert await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 3",
                         t=acme.id) == 1
    report = await verify(rt.db)
    assert report.problems == [f"{acme.id}: event #3 is missing"]
    assert (await verify(rt.db, tenant=globex.id)).ok


async def test_renumbering_after_a_deletion_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 2", t=acme.id)
    for seq in (3, 4, 5):
        await execute(rt, "UPDATE audit_events SET seq = :new WHERE tenant_id = :t "
                          "AND seq = :old", new=seq - 1, old=seq, t=acme.id)
    report = await verify(rt.db)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{acme.id}: event #2 ")


async def test_tenants_have_separate_chains(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    acme_chain, globex_chain = await chain(rt, acme.id), await chain(rt, globex.id)
    assert [e.seq for e in acme_chain] == [1, 2, 3, 4, 5]
    assert [e.seq for e in globex_chain] == [1, 2, 3, 4]
    assert acme_chain[0].prev_hash == globex_chain[0].prev_hash == GENESIS
    assert not {e.hash for e in acme_chain} & {e.hash for e in globex_chain}

    # Breaking Globex's chain is reported for Globex alone.
    await execute(rt, "UPDATE audit_events SET action = 'delete' "
                      "WHERE tenant_id = :t AND seq = 1", t=globex.id)
    report = await verify(rt.db)
    assert [p.split(":")[0] for p in report.problems] == [globex.id]
    assert (await verify(rt.db, tenant=acme.id)).ok
    # A third tenant's chain starts at 1 whatever the others hold.
    initech = await make_tenant(rt, "Initech")
    await seal_pending(rt.db)
    assert [e.seq for e in await chain(rt, initech.id)] == [1, 2]


# -- the CLI --------------------------------------------------------------------------------


def run_cli(data_dir: Path, database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_DATA_DIR=str(data_dir),
               TIDINGS_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    return subprocess.run([str(TIDINGS), "audit", "verify", *args], env=env,
                          capture_output=True, text=True, timeout=100, check=False)


async def test_cli_verify_exits_0_when_intact_and_2_after_tampering(tmp_path: Path) -> None:
    data_dir, database = tmp_path / "cli-data", tmp_path / "cli.db"
    settings = Settings(data_dir=data_dir, database_url=f"sqlite+aiosqlite:///{database}")
    rt = await open_runtime(settings, clock=FakeClock(), start_background=False)
    try:
        acme = await make_tenant(rt, "Acme")
        globex = await make_tenant(rt, "Globex")
        await add_events(rt, acme, 2)
    finally:
        await close_runtime(rt)

    intact = await asyncio.to_thread(run_cli, data_dir, database)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "chains: 2, events: 6, unsealed: 0" in intact.stdout
    assert intact.stdout.strip().endswith("ok")

    with sqlite3.connect(database) as conn:
        changed = conn.execute("UPDATE audit_events SET actor_id = 'mallory' "
                               "WHERE tenant_id = ? AND seq = 2", (acme.id,)).rowcount
    assert changed == 1

    broken = await asyncio.to_thread(run_cli, data_dir, database)
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert f"BROKEN {acme.id}: event #2" in broken.stdout
    assert globex.id not in broken.stdout
    assert "audit trail has been altered" in broken.stdout

    only_globex = await asyncio.to_thread(run_cli, data_dir, database, "--account", globex.id)
    assert only_globex.returncode == 0, only_globex.stdout + only_globex.stderr
