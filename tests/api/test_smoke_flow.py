"""The issue's tour, through the real app: send, deliver, webhooks signed, history kept."""

from __future__ import annotations

import httpx

from tests.conftest import HookServer, Tenant, settle
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.webhooks.signing import SIGNATURE_HEADER, verify


async def test_message_goes_queued_sent_delivered_with_signed_webhooks(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers, json={
        "to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms",
        "status_callback": hooks.url})
    assert sent.status_code == 201, sent.text
    message = sent.json()
    assert message["status"] == "queued"
    assert (message["num_segments"], message["encoding"]) == (1, "GSM-7")

    await settle(rt, clock)
    assert (await client.get(f"/v1/messages/{message['id']}",
                             headers=acme.headers)).json()["status"] == "sent"
    await settle(rt, clock, seconds=10)

    read = (await client.get(f"/v1/messages/{message['id']}", headers=acme.headers)).json()
    assert read["status"] == "delivered"
    assert [e["status"] for e in read["events"]] == ["queued", "sent", "delivered"]
    assert [b["data"]["status"] for b in hooks.bodies()] == ["queued", "sent", "delivered"]
    assert [b["sequence"] for b in hooks.bodies()] == [1, 2, 3]
    for request in hooks.requests:
        verify(acme.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
               now=int(clock.now().timestamp()))
