"""Termination (issue 16, item 8; TER-1..3) on both databases: terminating an account
schedules its purge six months out; until then nothing goes; the purge (due, or sooner
on request) empties every table of the account and those below it, destroys their
keys and issues a signed deletion certificate without personal data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.api.test_operator_api import operator_key
from tests.conftest import Tenant, make_tenant, settle
from tests.mail.test_mail_jobs import mailbox
from tests.users.people import person
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.privacy import termination
from tidings.privacy.models import AccountPurge
from tidings.privacy.subjects import subject_index
from tidings.privacy.tasks import apply_retention_daily, purge_due_accounts
from tidings.privacy.termination import purge_count, verify_certificate
from tidings.runtime import Runtime
from tidings.storage.ciphers import VaultError
from tidings.storage.db import SYSTEM
from tidings.storage.keystore import kek_table, subject_keys_table, tenant_keys_table

pytestmark = pytest.mark.pg_keystore

CANARY = "+12025550173"
DAY = 86400.0


async def ops_headers(rt: Runtime, clock: FakeClock) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await operator_key(rt, clock))[1]}"}


async def terminate(client: httpx.AsyncClient, ops: dict[str, str], account: str) -> None:
    done = await client.post(f"/v1/operator/accounts/{account}/status", headers=ops,
                             json={"status": "terminated", "reason": "Contract ended"})
    assert done.status_code == 200, done.text


async def rows_left(rt: Runtime, tenant: str) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return await purge_count(session, tenant)


async def keys_left(rt: Runtime, tenant: str) -> int:
    async with rt.vault.keystore.connect() as conn:
        return sum([len((await conn.execute(select(table).where(
            table.c.tenant_id == tenant))).all())
            for table in (tenant_keys_table, kek_table, subject_keys_table)])


async def busy_account(client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> Tenant:
    """acme with an owner, messages, a sub-account with its own messages, a request."""
    await person(rt, acme.id, "owner", email="owner@acme.example")
    child = await make_tenant(rt, "Acme Child", parent=acme.id)
    for tenant in (acme, child):
        sent = await client.post("/v1/messages", headers=tenant.headers,
                                 json={"to": CANARY, "from": "Acme", "body": "CANARY-ter"})
        assert sent.status_code == 201, sent.text
    made = await client.post("/v1/privacy/requests", headers=acme.headers, json={
        "type": "objection", "subject": {"number": CANARY}})
    assert made.status_code == 201
    return child


async def test_ter_1_termination_schedules_the_purge_six_months_out_and_keeps_the_data(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    ops = await ops_headers(rt, clock)
    clock.advance((datetime(2027, 8, 31, 10, tzinfo=UTC) - clock.now()).total_seconds())
    await busy_account(client, rt, acme)
    await settle(rt, clock)
    await terminate(client, ops, acme.id)
    purge = (await client.get(f"/v1/operator/privacy/purges/{acme.id}", headers=ops)).json()
    assert purge["terminated_at"].startswith("2027-08-31T10:00")
    assert purge["purge_due_at"].startswith("2028-02-29T10:00")  # six calendar months
    assert (purge["requested_at"], purge["purged_at"]) == (None, None)
    clock.advance(181 * DAY)  # not yet due: 29 February 2028 is 182 days away
    await purge_due_accounts(rt)
    assert await rows_left(rt, acme.id) > 0
    early = await client.get(f"/v1/operator/privacy/purges/{acme.id}/certificate",
                             headers=ops)
    assert early.status_code == 409
    assert early.json()["code"] == "not_purged_yet"


async def test_ter_2_the_due_purge_empties_every_table_destroys_keys_and_certifies(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(termination, "_PURGE_CHUNK", 2)  # many chunks, each short
    ops = await ops_headers(rt, clock)
    child = await busy_account(client, rt, acme)
    kept = await client.post("/v1/messages", headers=globex.headers,
                             json={"to": CANARY, "from": "Globex", "body": "kept"})
    await settle(rt, clock)
    keys = await rt.vault.keys_for(acme.id)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:  # a backup, say
        backup = (await session.scalars(select(Message).where(
            Message.tenant_id == acme.id))).first()
    assert backup is not None
    assert await rows_left(rt, acme.id) > 0
    await terminate(client, ops, acme.id)
    clock.advance(184 * DAY)
    await purge_due_accounts(rt)

    for tenant in (acme.id, child.id):
        assert await rows_left(rt, tenant) == 0
        assert await keys_left(rt, tenant) == 0
    # TER-3: a backup's rows name keys that are gone from the key store (keys_left
    # above), and even the keys this process held before refuse.
    assert backup.subject_key is not None
    with pytest.raises(VaultError, match="destroyed"):
        subject_index(keys, CANARY)
    shown = await client.get(f"/v1/messages/{kept.json()['id']}", headers=globex.headers)
    assert shown.json()["body"] == "kept"  # another account untouched

    purge = (await client.get(f"/v1/operator/privacy/purges/{acme.id}", headers=ops)).json()
    assert purge["purged_at"]
    assert purge["certificate_id"]
    certificate = (await client.get(f"/v1/operator/privacy/purges/{acme.id}/certificate",
                                    headers=ops)).json()
    assert certificate["accounts"] == [acme.id, child.id]
    assert certificate["deleted_rows"]["messages"] == 2
    assert verify_certificate(rt, certificate)
    assert not verify_certificate(rt, {**certificate, "purged_at": "2020-01-01"})
    text = json.dumps(certificate)
    for personal in (CANARY, "CANARY-ter", "owner@acme.example", "Acme"):
        assert personal not in text
    pdf = await client.get(f"/v1/operator/privacy/purges/{acme.id}/certificate",
                           headers={**ops, "Accept": "application/pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert CANARY.encode() not in pdf.content
    await rt.worker_pool().drain()
    [mail] = [m for m in await mailbox(rt) if m.kind == "privacy"]
    assert mail.to == "owner@acme.example"
    assert certificate["certificate_id"] in mail.body
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        actions = set((await session.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == acme.id))).all())
    assert "account.purged" in actions  # and the account's audit trail is kept

    await purge_due_accounts(rt)  # done: nothing more happens
    await apply_retention_daily(rt)  # nor does the retention job write for it again
    assert await rows_left(rt, acme.id) == 0
    again = (await client.get(f"/v1/operator/privacy/purges/{acme.id}", headers=ops)).json()
    assert again["certificate_id"] == purge["certificate_id"]


async def test_ter_2_the_client_may_ask_for_the_purge_sooner(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    ops = await ops_headers(rt, clock)
    await busy_account(client, rt, acme)
    active = await client.post(f"/v1/operator/privacy/purges/{acme.id}", headers=ops)
    assert active.status_code == 409
    assert active.json()["code"] == "account_not_terminated"
    missing = await client.post("/v1/operator/privacy/purges/acc_nobody", headers=ops)
    assert missing.status_code == 404
    as_client = await client.post(f"/v1/operator/privacy/purges/{acme.id}",
                                  headers=acme.headers)
    assert as_client.status_code == 401
    assert await rows_left(rt, acme.id) > 0
    await terminate(client, ops, acme.id)
    clock.advance(DAY)
    done = await client.post(f"/v1/operator/privacy/purges/{acme.id}", headers=ops)
    assert done.status_code == 200, done.text
    purge: dict[str, Any] = done.json()
    assert purge["requested_at"]
    assert purge["purged_at"]
    assert await rows_left(rt, acme.id) == 0
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await session.get(AccountPurge, acme.id)
    assert row is not None
    assert row.certificate is not None
    assert row.certificate["requested_early_at"] is not None
