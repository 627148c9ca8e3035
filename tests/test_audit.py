"""The tamper-evident audit trail: sealing, verification, and the ``tidings audit`` CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_ACTOR, Tenant, make_tenant
from tests.pg import as_owner
from tidings.accounts.service import do_create_api_key, do_update_account, get_account
from tidings.audit.chain import canonical, unkeyed_digest
from tidings.audit.legacy import key_legacy_chains
from tidings.audit.models import AuditEvent
from tidings.audit.service import GENESIS, seal_pending, sealed_events
from tidings.audit.verify import verify
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.runtime import JOBS, Runtime, close_runtime, open_runtime
from tidings.storage.db import SYSTEM, Database

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


@contextlib.asynccontextmanager
async def as_owner_of_the_schema(rt: Runtime) -> AsyncIterator[AsyncSession]:
    """A transaction across tenants as whoever can still tamper with sealed events: on
    PostgreSQL the schema's owner (migration 0021 refuses the runtime roles any change of
    one), on SQLite anyone who may write the file."""
    if rt.db.is_sqlite:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            yield session
        return
    owner = Database(as_owner(rt.settings.resolved_database_url()))
    try:
        async with owner.transaction(tenant=SYSTEM) as session:
            yield session
    finally:
        await owner.dispose()


async def execute(rt: Runtime, sql: str, **params: Any) -> int:
    """``sql`` run by someone tampering with the database (as the schema's owner)."""
    async with as_owner_of_the_schema(rt) as session:
        result = await session.execute(text(sql), params)
        return int(result.rowcount)  # type: ignore[attr-defined]


@pytest.fixture
async def sealed(rt: Runtime, acme: Tenant, globex: Tenant) -> tuple[Tenant, Tenant]:
    """Acme with five sealed events, Globex with four."""
    await add_events(rt, acme, 3)
    await add_events(rt, globex, 2)
    assert await seal_pending(rt.db, rt.audit_chain) == 9
    return acme, globex


async def test_seal_then_verify_is_ok(rt: Runtime, clock: FakeClock, acme: Tenant,
                                      globex: Tenant) -> None:
    await add_events(rt, acme, 2)
    before = await verify(rt.db, rt.audit_chain)
    assert (before.ok, before.sealed_events, before.unsealed_events) == (True, 0, 6)

    assert await seal_pending(rt.db, rt.audit_chain) == 6
    report = await verify(rt.db, rt.audit_chain)
    assert report.ok, report.problems
    assert (report.tenants, report.sealed_events, report.unsealed_events) == (2, 6, 0)
    assert await seal_pending(rt.db, rt.audit_chain) == 0  # nothing left to seal

    # New events extend the existing chain rather than starting another.
    clock.advance(60)
    async with rt.db.transaction(tenant=acme.id) as session:
        account = await get_account(session, account_id=acme.id)
        await do_update_account(session, account=account, actor=TEST_ACTOR,
                                now=clock.now(), name="Acme Renamed")
    assert (await verify(rt.db, rt.audit_chain)).unsealed_events == 1
    assert await seal_pending(rt.db, rt.audit_chain) == 1
    events = await chain(rt, acme.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].prev_hash == events[-2].hash
    assert events[-1].fields == ["name"]
    report = await verify(rt.db, rt.audit_chain)
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
        assert event.hash == rt.audit_chain.digest(prev, event, event.seq)
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
    ("request_id", "req_forged"),  # giving an event a request id changes what is hashed
])
async def test_tampering_a_sealed_row_is_reported(
        rt: Runtime, sealed: tuple[Tenant, Tenant], column: str, value: str) -> None:
    acme, globex = sealed
    original = (await chain(rt, acme.id))[2]
    assert str(getattr(original, column)) != value  # a real change, not a no-op
    changed = await execute(rt, f"UPDATE audit_events SET {column} = :v "
                                "WHERE tenant_id = :t AND seq = 3", v=value, t=acme.id)
    assert changed == 1
    report = await verify(rt.db, rt.audit_chain)
    assert not report.ok
    assert report.problems == [f"{acme.id}: event #3 (id {original.id}) was altered"]
    assert (await verify(rt.db, rt.audit_chain, tenant=globex.id)).ok
    assert not (await verify(rt.db, rt.audit_chain, tenant=acme.id)).ok


async def test_tampering_the_time_of_an_event_is_reported(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    original = (await chain(rt, acme.id))[1]
    async with as_owner_of_the_schema(rt) as session:
        await session.execute(update(AuditEvent).where(AuditEvent.id == original.id)
                              .values(created_at=original.created_at + timedelta(hours=1)))
    report = await verify(rt.db, rt.audit_chain)
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
                  h=rt.audit_chain.digest(forged.prev_hash or "", forged, forged.seq),
                  id=target.id)
    report = await verify(rt.db, rt.audit_chain)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{acme.id}: event #3 ")


async def test_deleting_a_middle_event_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    assert await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 3",
                         t=acme.id) == 1
    report = await verify(rt.db, rt.audit_chain)
    assert report.problems == [
        f"{acme.id}: event #3 is missing (deleted, or its chain fields were blanked)"]
    assert (await verify(rt.db, rt.audit_chain, tenant=globex.id)).ok


async def test_renumbering_after_a_deletion_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 2", t=acme.id)
    for seq in (3, 4, 5):
        await execute(rt, "UPDATE audit_events SET seq = :new WHERE tenant_id = :t "
                          "AND seq = :old", new=seq - 1, old=seq, t=acme.id)
    report = await verify(rt.db, rt.audit_chain)
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
    report = await verify(rt.db, rt.audit_chain)
    assert [p.split(":")[0] for p in report.problems] == [globex.id]
    assert (await verify(rt.db, rt.audit_chain, tenant=acme.id)).ok
    # A third tenant's chain starts at 1 whatever the others hold.
    initech = await make_tenant(rt, "Initech")
    await seal_pending(rt.db, rt.audit_chain)
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
        await seal_pending(rt.db, rt.audit_chain)
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


# -- truncation, blanking and recomputing: the keyed chain and its checkpoint ---------------

BLANK = "UPDATE audit_events SET actor_id = 'mallory', seq = NULL, prev_hash = NULL, hash = NULL"


async def recompute_without_key(rt: Runtime, tenant: str) -> None:
    """What someone who can edit the database can do: rehash the chain with plain SHA-256."""
    prev = GENESIS
    for event in await chain(rt, tenant):
        digest = unkeyed_digest(prev, event, event.seq or 0)
        await execute(rt, "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id",
                      p=prev, h=digest, id=event.id)
        prev = digest


async def test_deleting_the_last_events_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    assert await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq >= 4",
                         t=acme.id) == 2
    report = await verify(rt.db, rt.audit_chain)
    assert report.problems == [
        f"{acme.id}: the chain ends at event #3 but its checkpoint is at #5: its last events "
        "were deleted, or their chain fields blanked"]
    assert (await verify(rt.db, rt.audit_chain, tenant=globex.id)).ok

    # The sealer does not paper over the gap by extending the shortened chain.
    await add_events(rt, acme, 3)
    assert await seal_pending(rt.db, rt.audit_chain) == 0
    assert not (await verify(rt.db, rt.audit_chain, tenant=acme.id)).ok


async def test_deleting_a_whole_chain_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    assert await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t", t=acme.id) == 5
    report = await verify(rt.db, rt.audit_chain)
    assert report.problems == [
        f"{acme.id}: the whole chain is missing; its checkpoint vouches for 5 events"]
    assert not (await verify(rt.db, rt.audit_chain, tenant=acme.id)).ok
    assert (await verify(rt.db, rt.audit_chain, tenant=globex.id)).ok


@pytest.mark.parametrize("seq", [3, 5])
async def test_an_event_edited_with_its_chain_fields_blanked_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant], seq: int) -> None:
    acme, _ = sealed
    assert await execute(rt, f"{BLANK} WHERE tenant_id = :t AND seq = :s",
                         t=acme.id, s=seq) == 1
    report = await verify(rt.db, rt.audit_chain)
    assert not report.ok
    assert report.problems[0].startswith(f"{acme.id}: ")
    assert "blanked" in report.problems[0]
    assert report.unsealed_events == 1  # verify left it unsealed: it never writes


async def test_a_chain_recomputed_without_the_key_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    await execute(rt, "UPDATE audit_events SET actor_id = 'mallory' "
                      "WHERE tenant_id = :t AND seq = 2", t=acme.id)
    await recompute_without_key(rt, acme.id)
    report = await verify(rt.db, rt.audit_chain)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{acme.id}: event #1 ")
    assert "hashed without the audit key" in report.problems[0]
    assert (await verify(rt.db, rt.audit_chain, tenant=globex.id)).ok


async def test_a_checkpoint_edited_in_the_key_store_is_detected(
        rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq >= 4", t=acme.id)
    async with rt.vault.keystore.begin() as conn:  # roll the checkpoint back to match
        third = (await chain(rt, acme.id))[2]
        await conn.execute(text("UPDATE audit_checkpoints SET seq = 3, hash = :h "
                                "WHERE tenant_id = :t"), {"h": third.hash, "t": acme.id})
    report = await verify(rt.db, rt.audit_chain)
    assert report.problems == [
        f"{acme.id}: the checkpoint of this chain was not written with the audit key"]


async def test_chains_sealed_before_keying_are_resealed_once_and_say_so(
        rt: Runtime, clock: FakeClock, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    await recompute_without_key(rt, acme.id)  # as the sealer of earlier versions left it
    async with rt.vault.keystore.begin() as conn:  # earlier versions kept no checkpoints
        await conn.execute(text("DELETE FROM audit_checkpoints"))
    assert not (await verify(rt.db, rt.audit_chain)).ok

    assert await key_legacy_chains(rt.db, rt.audit_chain, now=clock.now(),
                                   owner_url=rt.settings.migrate_database_url) == [acme.id]
    assert await key_legacy_chains(rt.db, rt.audit_chain, now=clock.now(),
                                   owner_url=rt.settings.migrate_database_url) == []
    report = await verify(rt.db, rt.audit_chain)
    assert report.ok, report.problems
    assert (report.sealed_events, report.unsealed_events) == (9, 1)
    await seal_pending(rt.db, rt.audit_chain)
    resealed = (await chain(rt, acme.id))[-1]
    assert (resealed.action, resealed.table_name, resealed.actor_type) == (
        "reseal", "audit_events", "system")
    assert resealed.fields == ["hash", "prev_hash"]
    assert (await verify(rt.db, rt.audit_chain)).ok
    # Checkpointed now: deleting the last events is caught for both chains.
    for tenant in (acme, globex):
        await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = "
                          "(SELECT MAX(seq) FROM audit_events WHERE tenant_id = :t)",
                      t=tenant.id)
    assert len((await verify(rt.db, rt.audit_chain)).problems) == 2


async def test_a_broken_chain_sealed_before_keying_is_not_resealed(
        rt: Runtime, clock: FakeClock, sealed: tuple[Tenant, Tenant]) -> None:
    acme, _ = sealed
    await recompute_without_key(rt, acme.id)
    await execute(rt, "UPDATE audit_events SET actor_id = 'mallory' "
                      "WHERE tenant_id = :t AND seq = 2", t=acme.id)
    async with rt.vault.keystore.begin() as conn:
        await conn.execute(text("DELETE FROM audit_checkpoints"))
    assert await key_legacy_chains(rt.db, rt.audit_chain, now=clock.now(),
                                   owner_url=rt.settings.migrate_database_url) == []
    report = await verify(rt.db, rt.audit_chain)
    assert [p.split(":")[0] for p in report.problems] == [acme.id]


# -- the CLI against each attack, and that it never writes ------------------------------------

ATTACKS = {
    "untouched": ("", "ok"),
    "delete the last events": (
        "DELETE FROM audit_events WHERE tenant_id = :acme AND seq >= 3",
        "the chain ends at event #2 but its checkpoint is at #4"),
    "delete a whole chain": (
        "DELETE FROM audit_events WHERE tenant_id = :acme",
        "the whole chain is missing; its checkpoint vouches for 4 events"),
    "blank the chain fields of an edited event": (
        f"{BLANK} WHERE tenant_id = :acme AND seq = 4",
        "the chain ends at event #3 but its checkpoint is at #4: its last events were "
        "deleted, or their chain fields blanked"),
}


def copy_data_and_keys(data_dir: Path, into: Path) -> Path:
    """A copy of a data folder and of its key folder beside it (``<data>-keys``)."""
    for folder in (data_dir, data_dir.with_name(f"{data_dir.name}-keys")):
        shutil.copytree(folder, into / folder.name)
    return into / data_dir.name


def dump(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return list(conn.iterdump())


def tamper(database: Path, sql: str, acme: str) -> None:
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        assert conn.execute(sql, {"acme": acme}).rowcount >= 1


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data folder with two sealed chains (Acme's four events) and one event pending."""
    root = tmp_path_factory.mktemp("audit-cli") / "data"

    async def build() -> str:
        settings = Settings(data_dir=root, database_url=f"sqlite+aiosqlite:///{root / 't.db'}")
        rt = await open_runtime(settings, clock=FakeClock(), start_background=False)
        try:
            acme = await make_tenant(rt, "Acme")
            await make_tenant(rt, "Globex")
            await add_events(rt, acme, 2)
            await seal_pending(rt.db, rt.audit_chain)
            await add_events(rt, acme, 1)  # the server has not sealed this one yet
            return acme.id
        finally:
            await close_runtime(rt)
    return root, asyncio.run(build())


@pytest.mark.parametrize("attack", ATTACKS)
def test_cli_verify_fails_on_each_attack_and_writes_nothing(
        cli_template: tuple[Path, str], tmp_path: Path, attack: str) -> None:
    template, acme = cli_template
    data_dir = copy_data_and_keys(template, tmp_path)
    database = data_dir / "t.db"
    sql, message = ATTACKS[attack]
    if sql:
        tamper(database, sql, acme)
    before = dump(database)
    result = run_cli(data_dir, database)
    assert dump(database) == before  # not even the pending event was sealed
    if sql:
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"BROKEN {acme}: {message}" in result.stdout
        assert result.stdout.strip().endswith("audit trail has been altered")
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "chains: 2, events: 6, unsealed: 1" in result.stdout
        assert result.stdout.strip().endswith("ok")


def test_cli_verify_fails_on_a_chain_recomputed_without_the_key(
        cli_template: tuple[Path, str], tmp_path: Path) -> None:
    template, acme = cli_template
    data_dir = copy_data_and_keys(template, tmp_path)
    database = data_dir / "t.db"
    tamper(database, "UPDATE audit_events SET actor_id = 'mallory' "
                     "WHERE tenant_id = :acme AND seq = 2", acme)
    asyncio.run(_recompute_without_key(database, acme))
    before = dump(database)
    result = run_cli(data_dir, database)
    assert dump(database) == before
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"BROKEN {acme}: event #1 " in result.stdout
    assert "hashed without the audit key" in result.stdout


async def _recompute_without_key(database: Path, tenant: str) -> None:
    db = Database(f"sqlite+aiosqlite:///{database}")
    try:
        async with db.transaction(tenant=SYSTEM) as session:
            prev = GENESIS
            for event in await sealed_events(session, tenant):
                event.prev_hash = prev
                event.hash = prev = unkeyed_digest(prev, event, event.seq or 0)
    finally:
        await db.dispose()


def test_cli_verify_without_the_servers_keys_says_so(
        cli_template: tuple[Path, str], tmp_path: Path) -> None:
    template, _ = cli_template
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)  # the data alone, not its key folder
    result = run_cli(data_dir, data_dir / "t.db")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no master key at" in result.stderr
    assert not (tmp_path / "data-keys").exists()  # no key was made up


async def test_the_api_verifies_the_callers_chain_only(
        client: httpx.AsyncClient, rt: Runtime, sealed: tuple[Tenant, Tenant]) -> None:
    acme, globex = sealed
    intact = await client.post("/v1/audit-events/verify", headers=acme.headers)
    assert intact.status_code == 200, intact.text
    assert intact.json() == {"intact": True, "sealed_events": 5, "unsealed_events": 0,
                             "problems": []}
    first = (await chain(rt, globex.id))[0]
    await execute(rt, "UPDATE audit_events SET actor_id = 'mallory' WHERE id = :id",
                  id=first.id)
    assert (await client.post("/v1/audit-events/verify", headers=acme.headers)).json()[
        "intact"] is True  # another tenant's break is not Acme's, nor shown to it
    broken = (await client.post("/v1/audit-events/verify", headers=globex.headers)).json()
    assert broken["intact"] is False
    assert len(broken["problems"]) == 1


# -- AUD-1: each event names the request that made the change ---------------------------------

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}
GIVEN = "4b1c0a86-2f1e-4d6b-9d1e-5c7f0e3a2b19"


async def events_of_request(rt: Runtime, request_id: str) -> list[AuditEvent]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(AuditEvent).where(
            AuditEvent.request_id == request_id))).all())


async def test_aud_1_an_api_write_has_one_audit_event_with_its_request_id(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    renamed = await client.patch("/v1/account", headers={**acme.headers, "X-Request-Id": GIVEN},
                                 json={"name": "Acme Renamed"})
    assert renamed.status_code == 200, renamed.text
    [event] = await events_of_request(rt, GIVEN)
    assert (event.table_name, event.row_id, event.fields) == ("accounts", acme.id, ["name"])
    assert (event.actor_type, event.actor_id) == ("api_key", acme.made.api_key_id)

    # Without the header, the id Tidings made and answered with; the fast send path too.
    sent = await client.post("/v1/messages", headers=acme.headers, json=SEND)
    assert sent.status_code == 201, sent.text
    made = sent.headers["X-Request-Id"]
    assert made.startswith("req_")
    [event] = await events_of_request(rt, made)
    assert (event.table_name, event.row_id) == ("messages", sent.json()["id"])

    # The list shows it; sealed, it is covered by the chain.
    listed = await client.get("/v1/audit-events", headers=acme.headers)
    assert [e["request_id"] for e in listed.json()["data"][:2]] == [made, GIVEN]
    await seal_pending(rt.db, rt.audit_chain)
    assert (await verify(rt.db, rt.audit_chain)).ok
    await execute(rt, "UPDATE audit_events SET request_id = 'req_other' WHERE request_id = :r",
                  r=GIVEN)
    assert not (await verify(rt.db, rt.audit_chain, tenant=acme.id)).ok


async def test_aud_1_work_no_request_started_has_no_request_id(
        rt: Runtime, acme: Tenant) -> None:
    await add_events(rt, acme, 1)  # as the operator's CLI does: a service, no request
    assert {e.request_id for e in await chain(rt, acme.id)} == {None}


def test_aud_1_events_without_a_request_id_hash_as_before_it_was_recorded() -> None:
    """Chains sealed before migration 0021 still verify: such an event's hashed form is the
    one it was sealed with, which had no request id."""
    when = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    event = SimpleNamespace(tenant_id="acc_1", actor_type="system", actor_id="tidings",
                            action="create", table_name="messages", row_id="msg_1",
                            fields=["body", "to"], created_at=when, request_id=None)
    assert canonical(event, 7) == (
        b'{"action":"create","actor_id":"tidings","actor_type":"system",'
        b'"created_at":"2026-12-01T12:00:00+00:00","fields":["body","to"],'
        b'"row_id":"msg_1","seq":7,"table_name":"messages","tenant_id":"acc_1"}')
    event.request_id = GIVEN
    assert canonical(event, 7).endswith(b'"request_id":"' + GIVEN.encode() + b'",'
                                        b'"row_id":"msg_1","seq":7,"table_name":"messages",'
                                        b'"tenant_id":"acc_1"}')


# -- AUD-3: checkpoints on a schedule, and each kind of tampering found where it starts ------

SEAL_CHORE = next(chore for chore in JOBS.chores if chore.name == "audit_seal")


async def assert_checkpoint_at_head(rt: Runtime, tenant: str) -> None:
    last = (await chain(rt, tenant))[-1]
    checkpoint = (await rt.audit_chain.checkpoints([tenant]))[tenant]
    assert (checkpoint.authentic, checkpoint.seq, checkpoint.hash) == (True, last.seq, last.hash)


async def test_aud_3_each_housekeeping_round_checkpoints_the_chain_head(
        rt: Runtime, acme: Tenant) -> None:
    await add_events(rt, acme, 2)
    assert await rt.audit_chain.checkpoints([acme.id]) == {}
    await SEAL_CHORE.run(rt)  # what the workers run every HOUSEKEEPING_SECONDS
    await assert_checkpoint_at_head(rt, acme.id)
    await add_events(rt, acme, 1)
    await SEAL_CHORE.run(rt)
    await assert_checkpoint_at_head(rt, acme.id)
    await SEAL_CHORE.run(rt)  # nothing new: the checkpoint stays at the head
    await assert_checkpoint_at_head(rt, acme.id)
    report = await verify(rt.db, rt.audit_chain)
    assert (report.ok, report.sealed_events) == (True, 5)


async def insert_forged(rt: Runtime, tenant: str, *, seq: int, prev_hash: str) -> None:
    """An event made up by someone without the audit key: plain SHA-256 is all they have."""
    async with as_owner_of_the_schema(rt) as session:
        forged = AuditEvent(tenant_id=tenant, actor_type="operator", actor_id="mallory",
                            action="delete", table_name="messages", row_id="msg_forged",
                            fields=["body"], created_at=rt.clock.now(), seq=seq,
                            prev_hash=prev_hash)
        forged.hash = unkeyed_digest(prev_hash, forged, seq)
        session.add(forged)


async def renumber(rt: Runtime, tenant: str, moves: list[tuple[int, int]]) -> None:
    for old, new in moves:  # one at a time: (tenant_id, seq) is unique
        await execute(rt, "UPDATE audit_events SET seq = :new WHERE tenant_id = :t "
                          "AND seq = :old", new=new, old=old, t=tenant)


async def insert_in_the_middle(rt: Runtime, tenant: str) -> None:
    await renumber(rt, tenant, [(5, 6), (4, 5), (3, 4)])
    await insert_forged(rt, tenant, seq=3, prev_hash=(await chain(rt, tenant))[1].hash or "")


async def insert_at_the_end(rt: Runtime, tenant: str) -> None:
    await insert_forged(rt, tenant, seq=6, prev_hash=(await chain(rt, tenant))[-1].hash or "")


async def swap_two(rt: Runtime, tenant: str) -> None:
    await renumber(rt, tenant, [(2, 0), (3, 2), (0, 3)])


async def edit_one(rt: Runtime, tenant: str) -> None:
    await execute(rt, "UPDATE audit_events SET fields = '[\"name\"]' WHERE tenant_id = :t "
                      "AND seq = 4", t=tenant)


async def delete_one(rt: Runtime, tenant: str) -> None:
    await execute(rt, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 2", t=tenant)


TAMPERING = {  # the attack, and the first index it breaks
    "edit an event": (edit_one, 4),
    "delete an event": (delete_one, 2),
    "insert an event between two": (insert_in_the_middle, 3),
    "insert an event after the last": (insert_at_the_end, 6),
    "swap two events": (swap_two, 2),
}


@pytest.mark.parametrize("attack", TAMPERING)
async def test_aud_3_tampering_fails_verify_at_the_first_bad_index(
        rt: Runtime, sealed: tuple[Tenant, Tenant], attack: str) -> None:
    acme, globex = sealed
    await assert_checkpoint_at_head(rt, acme.id)  # after a clean run, the last one matches
    assert (await verify(rt.db, rt.audit_chain)).ok
    tamper_with, first_bad = TAMPERING[attack]
    await tamper_with(rt, acme.id)  # as the schema's owner: the runtime roles cannot
    report = await verify(rt.db, rt.audit_chain)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"{acme.id}: event #{first_bad} "), report.problems
    assert (await verify(rt.db, rt.audit_chain, tenant=globex.id)).ok
