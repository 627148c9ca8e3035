"""Message retention (issue 16, item 3; RET-2) on both databases: a message keeps its
body and its person's address for the account's period, then keeps only its country,
number type, status and day; the person's key goes once nothing needs it; reruns do
nothing; the period is the account's within the operator's limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, settle
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.privacy.retention import apply_retention, due_accounts
from tidings.privacy.scan import Canary, scan
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.storage.keystore import erasure_ledger_table, subject_keys_table

pytestmark = pytest.mark.pg_keystore

CANARY = "+12025550173"
HOUR, DAY = 3600.0, 86400.0


async def send(client: httpx.AsyncClient, tenant: Tenant, to: str = CANARY,
               body: str = "CANARY-retention-body") -> str:
    sent = await client.post("/v1/messages", headers=tenant.headers,
                             json={"to": to, "from": "Acme", "body": body})
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


async def shown(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def row(rt: Runtime, message_id: str) -> Message:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        found = await session.get(Message, message_id)
    assert found is not None
    return found


async def key_lives(rt: Runtime, key_id: str | None) -> bool:
    assert key_id is not None
    async with rt.vault.keystore.connect() as conn:
        return bool(await conn.scalar(select(func.count()).select_from(subject_keys_table)
                                      .where(subject_keys_table.c.key_id == key_id)))


async def test_ret_2_a_message_past_90_days_keeps_country_type_and_day_only(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    clock.advance((datetime(2027, 1, 10, 15, 42, tzinfo=UTC) - clock.now()).total_seconds())
    old = await send(client, acme)
    theirs = await send(client, globex)
    await settle(rt, clock, seconds=1)
    key_id = (await row(rt, old)).subject_key
    assert await key_lives(rt, key_id)

    clock.advance(90 * DAY - HOUR)  # 89 days 23 hours: intact
    assert (await apply_retention(rt, tenant=acme.id)).messages == 0
    before = await shown(client, acme, old)
    assert before["body"] == "CANARY-retention-body"

    clock.advance(2 * HOUR)  # 90 days and an hour
    report = await apply_retention(rt, tenant=acme.id)
    assert (report.messages, report.keys_destroyed) == (1, 1)
    view = await shown(client, acme, old)
    assert (view["to"], view["from"], view["body"], view["status"]) == (
        None, None, None, before["status"])
    assert view["created_at"].startswith("2027-01-10T00:00:00")
    stored = await row(rt, old)
    assert (stored.subject_country, stored.to_index, stored.from_index) == ("US", "", None)
    assert stored.subject_number_type in {"fixed_line_or_mobile", "mobile", "fixed_line"}
    assert not await key_lives(rt, key_id)  # the body's key is destroyed
    assert stored.subject_key is None
    async with rt.vault.keystore.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(erasure_ledger_table)) == 1
    report = await scan(rt, [Canary.number(CANARY), Canary.text("CANARY-retention-body")],
                        accounts=[acme.id])
    assert report.clean, report.findings  # no clear form, no token, nothing decryptable

    again = await apply_retention(rt, tenant=acme.id)  # idempotent
    assert (again.messages, again.keys_destroyed) == (0, 0)
    assert (await shown(client, globex, theirs))["body"] == "CANARY-retention-body"
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        events = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "anonymise"))).all()
    assert [(e.row_id, e.actor_type, e.fields) for e in events] == [
        (old, "system", ["body", "content", "from", "to"])]


async def test_ret_2_a_newer_message_keeps_the_persons_key_until_it_passes_too(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    first = await send(client, acme)
    clock.advance(60 * DAY)
    second = await send(client, acme, body="later")
    clock.advance(31 * DAY)
    report = await apply_retention(rt, tenant=acme.id)
    assert (report.messages, report.keys_destroyed) == (1, 0)
    assert (await shown(client, acme, first))["body"] is None
    assert (await shown(client, acme, second))["body"] == "later"  # its key still lives
    clock.advance(60 * DAY)
    report = await apply_retention(rt, tenant=acme.id)
    assert (report.messages, report.keys_destroyed) == (1, 1)


async def test_the_account_chooses_its_period_within_the_operators_limits(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    url = "/v1/privacy/retention"
    shown_first = (await client.get(url, headers=acme.headers)).json()
    assert (shown_first["message_body_days"], shown_first["chosen"]) == (90, False)
    assert (shown_first["min_days"], shown_first["max_days"]) == (1, 730)
    for body in ({"message_body_days": 0}, {"message_body_days": 731},
                 {"message_body_days": "thirty"}, {"message_body_days": 30, "x": 1}, {}):
        refused = await client.put(url, headers=acme.headers, json=body)
        assert refused.status_code == 400, (body, refused.text)
    assert (await client.get(url, headers=acme.headers)).json()["chosen"] is False
    chosen = await client.put(url, headers=acme.headers, json={"message_body_days": 30})
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["message_body_days"], chosen.json()["chosen"]) == (30, True)
    sent = await send(client, acme)
    clock.advance(30 * DAY + 1)
    assert (await apply_retention(rt, tenant=acme.id)).messages == 1
    assert (await shown(client, acme, sent))["body"] is None
    runs = (await client.get(url, headers=acme.headers)).json()["runs"]
    assert [r["messages"] for r in runs] == [1]
    back = await client.put(url, headers=acme.headers, json={"message_body_days": None})
    assert (back.json()["message_body_days"], back.json()["chosen"]) == (90, False)


async def test_the_daily_job_runs_each_account_once_a_day(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    assert set(await due_accounts(rt, now=clock.now())) >= {acme.id, globex.id}
    await apply_retention(rt, tenant=acme.id)
    assert acme.id not in await due_accounts(rt, now=clock.now())
    clock.advance(DAY)
    assert acme.id in await due_accounts(rt, now=clock.now())
