"""Resending a webhook: the same event (same id, same URL) once more, as a new delivery;
never while the first is still on its way, never another tenant's."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.conftest import HookServer, Tenant, assert_problem, make_tenant, settle
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


async def a_finished_delivery(client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
                              acme: Tenant) -> dict[str, object]:
    sent = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    listed = await client.get("/v1/webhook-deliveries", headers=acme.headers,
                              params={"message_id": sent["id"]})
    finished = [d for d in listed.json()["data"] if d["status"] == "succeeded"]
    assert finished, listed.text
    return dict(finished[-1])


async def test_a_resent_delivery_posts_the_same_event_again(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    first = await a_finished_delivery(client, rt, clock, acme)
    before = len(hooks.requests)
    resent = await client.post(f"/v1/webhook-deliveries/{first['id']}/resend",
                               headers=acme.headers)
    assert resent.status_code == 201, resent.text
    again = resent.json()
    assert again["id"] != first["id"]
    assert again["status"] == "pending"
    assert (again["event_id"], again["url"]) == (first["event_id"], first["url"])
    twice = await client.post(f"/v1/webhook-deliveries/{again['id']}/resend",
                              headers=acme.headers)
    assert_problem(twice, 409, "webhook_delivery_pending")
    await settle(rt, clock)
    new = hooks.requests[before:]
    assert len(new) == 1
    assert new[0]["headers"]["Tidings-Event-Id"] == first["event_id"]
    assert new[0]["headers"]["Tidings-Delivery-Id"] == again["id"]
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        actions = (await session.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == acme.id, AuditEvent.row_id == again["id"]))).all()
    assert actions == ["webhook.resend"]


async def test_another_tenants_or_a_made_up_delivery_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        globex: Tenant) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    first = await a_finished_delivery(client, rt, clock, acme)
    for delivery_id, headers in ((first["id"], globex.headers),
                                 ("whd_nothing", acme.headers), ("x" * 5000, acme.headers)):
        answer = await client.post(f"/v1/webhook-deliveries/{delivery_id}/resend",
                                   headers=headers)
        assert_problem(answer, 404, "webhook_delivery_not_found")
    listed = await client.get("/v1/webhook-deliveries", headers=acme.headers)
    assert len(listed.json()["data"]) == 3  # queued, sent, delivered: nothing added
