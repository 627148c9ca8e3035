"""Channel failover: "channels": ["whatsapp", "sms"] sends the SMS when WhatsApp fails or
is not delivered within fallback_after; the message's events show every attempt."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_whatsapp import (  # noqa: F401 - fixtures
    CUSTOMER,
    HOOK,
    OUR_NUMBER,
    CloudApi,
    cloud,
    signed,
    webhook,
    whatsapp,
)
from tests.conftest import Tenant, assert_problem, settle, stored_counts
from tidings.connectors.whatsapp.connector import WhatsAppConnector
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

SEND = {"channels": ["whatsapp", "sms"], "to": CUSTOMER, "from": OUR_NUMBER,
        "body": "Your code is 4242",
        "template": {"name": "one_time_code", "language": "en_US", "variables": ["4242"]}}


async def message(client: httpx.AsyncClient, acme: Tenant, message_id: str) -> dict[str, Any]:
    read: dict[str, Any] = (await client.get(f"/v1/messages/{message_id}",
                                             headers=acme.headers)).json()
    return read


def history(read: dict[str, Any]) -> list[tuple[str, bool, str, str | None]]:
    return [(e["status"], e["applied"], e["source"], e["connector"]) for e in read["events"]]


async def test_a_failed_whatsapp_message_goes_out_as_sms(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        cloud: CloudApi, whatsapp: WhatsAppConnector) -> None:  # noqa: F811
    sent = await client.post("/v1/messages", json=SEND, headers=acme.headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["channel"] == "whatsapp"
    await settle(rt, clock)
    failed = webhook(statuses=[{
        "id": "wamid.OUT1", "status": "failed", "timestamp": "1750263773",
        "recipient_id": CUSTOMER[1:], "errors": [{"code": 131026, "title": "Undeliverable"}]}])
    assert (await client.post(HOOK, **signed(failed))).status_code == 200
    await settle(rt, clock, seconds=6)  # SMS dispatch, then the sandbox's receipt
    read = await message(client, acme, sent.json()["id"])
    assert (read["channel"], read["status"]) == ("sms", "delivered")
    assert history(read) == [
        ("queued", True, "api", None),
        ("sent", True, "dispatcher", "wa"),
        ("failed", False, "carrier", None),
        ("queued", True, "fallback:sms", None),
        ("sent", True, "dispatcher", "sandbox"),
        ("delivered", True, "carrier", None)]


async def test_whatsapp_not_delivered_in_time_falls_back(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        cloud: CloudApi, whatsapp: WhatsAppConnector) -> None:  # noqa: F811
    sent = await client.post("/v1/messages", json={**SEND, "fallback_after": 60},
                             headers=acme.headers)
    await settle(rt, clock, seconds=30)
    assert (await message(client, acme, sent.json()["id"]))["channel"] == "whatsapp"
    await settle(rt, clock, seconds=31)  # 61 s after sent: the fallback job is due
    await settle(rt, clock, seconds=6)
    read = await message(client, acme, sent.json()["id"])
    assert (read["channel"], read["status"]) == ("sms", "delivered")
    assert ("not_delivered", False, "fallback", "wa") in history(read)
    assert len(cloud.requests) == 1


async def test_delivered_in_time_there_is_no_fallback(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        cloud: CloudApi, whatsapp: WhatsAppConnector) -> None:  # noqa: F811
    sent = await client.post("/v1/messages", json={**SEND, "fallback_after": 60},
                             headers=acme.headers)
    await settle(rt, clock)
    delivered = webhook(statuses=[{"id": "wamid.OUT1", "status": "delivered",
                                   "timestamp": "1750263773", "recipient_id": CUSTOMER[1:]}])
    assert (await client.post(HOOK, **signed(delivered))).status_code == 200
    await settle(rt, clock, seconds=61)
    await settle(rt, clock, seconds=6)
    read = await message(client, acme, sent.json()["id"])
    assert (read["channel"], read["status"]) == ("whatsapp", "delivered")
    assert not any(source.startswith("fallback") for _, _, source, _ in history(read))


@pytest.mark.parametrize("change", [
    {"channels": ["whatsapp", "whatsapp"]},
    {"channels": ["whatsapp"]},
    {"channels": ["email", "sms"]},
    {"channels": ["whatsapp", "sms"], "channel": "sms"},
    {"channels": None, "fallback_after": 60},
    {"fallback_after": 1},
    {"fallback_after": "60"},
])
async def test_bad_fallbacks_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                         acme: Tenant, change: dict[str, Any]) -> None:
    payload = {k: v for k, v in {**SEND, **change}.items() if v is not None}
    if "channels" not in payload:
        payload["channel"] = "whatsapp"
    assert_problem(await client.post("/v1/messages", json=payload, headers=acme.headers),
                   400, "validation_failed")
    assert (await stored_counts(rt))["messages"] == 0
