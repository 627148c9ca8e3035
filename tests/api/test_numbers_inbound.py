"""Sender numbers (claim, list, release) and inbound messages routed by them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import (
    TEST_ACTOR,
    HookServer,
    Tenant,
    assert_problem,
    hook_server,
    make_tenant,
    own_number,
    settle,
)
from tidings.accounts.models import Account, AccountStatus
from tidings.audit.models import AuditEvent
from tidings.connectors.base import InboundMessage
from tidings.core.clock import FakeClock
from tidings.messaging.inbound import receive_inbound, take_inbound
from tidings.messaging.models import Message
from tidings.numbers.models import NUMBER_FIELD, NumberClaim, PhoneNumber
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.web.errors import TidingsError
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify

NUMBER = "+12025550173"
CALLER = "+14155550100"



async def count(rt: Runtime, model: Any) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def inbound_count(rt: Runtime) -> int:
    """Inbound messages (owning a number also sent a code to it: an outbound message)."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message)
                                        .where(Message.direction == "inbound")) or 0)


async def audit_events(rt: Runtime, tenant: str, table: str) -> list[AuditEvent]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.table_name == table)
            .order_by(AuditEvent.id))
        return list(rows.all())


async def claim(client: httpx.AsyncClient, rt: Runtime, headers: dict[str, str],
                number: str = NUMBER) -> dict[str, Any]:
    return await own_number(client, rt, headers, number)


async def numbers(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/v1/numbers", headers=headers)
    assert response.status_code == 200, response.text
    return [n["number"] for n in response.json()]


def inbound(body: str = "Hi there", to: str = NUMBER, sender: str = CALLER) -> dict[str, str]:
    return {"from": sender, "to": to, "body": body}


# -- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["+12025550173", "+1 (202) 555-0173", "+1.202.555.0173",
                                 "+1 202-555-0173"])
async def test_claim_normalises_to_e164(client: httpx.AsyncClient, rt: Runtime,
                                        acme: Tenant, raw: str) -> None:
    row = await claim(client, rt, acme.headers, raw)
    assert row["number"] == NUMBER
    assert row["account_id"] == acme.id
    assert row["id"].startswith("num_")
    assert row["created_at"].startswith("2026-01-01T00:00:00")
    assert await numbers(client, acme.headers) == [NUMBER]


async def test_claim_list_and_release_are_audited(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    first = await claim(client, rt, acme.headers)
    second = await claim(client, rt, acme.headers, "+44 20 7946 0958")
    assert await numbers(client, acme.headers) == [NUMBER, "+442079460958"]

    response = await client.delete(f"/v1/numbers/{first['id']}", headers=acme.headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await numbers(client, acme.headers) == ["+442079460958"]
    assert_problem(await client.delete(f"/v1/numbers/{first['id']}", headers=acme.headers),
                   404, "number_not_found")

    events = await audit_events(rt, acme.id, "phone_numbers")
    assert [(e.action, e.row_id, e.fields, e.actor_type, e.actor_id) for e in events] == [
        ("create", first["id"], ["number"], "api_key", acme.made.api_key_id),
        ("create", second["id"], ["number"], "api_key", acme.made.api_key_id),
        ("delete", first["id"], ["number"], "api_key", acme.made.api_key_id),
    ]
    for event in events:
        assert "2025550173" not in str(vars(event))


async def test_numbers_are_not_stored_in_clear(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, database_url: str) -> None:
    own, address = await claim(client, rt, acme.headers), "support@acme.example"
    await claim(client, rt, acme.headers, address)
    await client.post("/v1/numbers", headers=acme.headers, json={"number": "+442079460958"})
    plaintexts = [b"2025550173", address.encode(), b"acme.example", b"2079460958"]
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        tables = {name: (await session.execute(select(model.__table__))).all()
                  for name, model in (("phone_numbers", PhoneNumber),
                                      ("number_claims", NumberClaim))}
    for name, rows in tables.items():
        dump = b"|".join(v if isinstance(v, bytes) else str(v).encode()
                         for row in rows for v in row)
        for plain in plaintexts:
            assert plain not in dump, (name, plain)

    # Ciphertext under the account's key; the index under the platform's, not the account's.
    keys, platform = await rt.vault.keys_for(acme.id), await rt.vault.platform_keys()
    [row] = [r for r in tables["phone_numbers"] if r.id == own["id"]]
    assert keys.decrypt(row.number_enc, field=NUMBER_FIELD) == NUMBER
    assert row.number_index == platform.blind_index(NUMBER, field=NUMBER_FIELD)
    assert row.number_index != keys.blind_index(NUMBER, field=NUMBER_FIELD)

    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        blob = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"))
                        if p.exists())
        assert blob
        for plain in plaintexts:
            assert plain not in blob, plain


@pytest.mark.parametrize(("body", "code"), [
    ({"number": "12025550173"}, "invalid_phone_number"),
    ({"number": "+1 202 555 017"}, "invalid_phone_number"),
    ({"number": "+1202555017a"}, "invalid_phone_number"),
    ({"number": "+0 202 555 0173"}, "invalid_phone_number"),
    ({"number": "+1 202 555 0173 ext 5"}, "invalid_phone_number"),
    ({"number": "+" + "1" * 40}, "invalid_phone_number"),
    ({"number": ""}, "validation_failed"),
    ({}, "validation_failed"),
    ({"number": NUMBER, "label": "main"}, "validation_failed"),
    ({"number": 12025550173}, "validation_failed"),
])
async def test_invalid_number_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                         acme: Tenant, body: dict[str, Any],
                                         code: str) -> None:
    assert_problem(await client.post("/v1/numbers", headers=acme.headers, json=body), 400,
                   code)
    assert await count(rt, PhoneNumber) == 0
    assert await count(rt, NumberClaim) == 0
    assert await count(rt, Message) == 0  # no code was sent
    assert await audit_events(rt, acme.id, "phone_numbers") == []
    assert await audit_events(rt, acme.id, "number_claims") == []


async def test_releasing_another_tenants_number_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    held = await claim(client, rt, acme.headers)
    for number_id in (held["id"], "num_doesnotexist", held["id"] + "x" * 60):
        assert_problem(await client.delete(f"/v1/numbers/{number_id}",
                                           headers=globex.headers), 404, "number_not_found")
    assert await numbers(client, acme.headers) == [NUMBER]
    assert await numbers(client, globex.headers) == []
    assert await audit_events(rt, globex.id, "phone_numbers") == []


async def test_numbers_of_a_sub_account_are_its_own(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    sub = await make_tenant(rt, "Acme Sub", parent=acme.id)
    row = await claim(client, rt, {**acme.headers, "Tidings-Account": sub.id})
    assert row["account_id"] == sub.id
    assert await numbers(client, sub.headers) == [NUMBER]
    assert await numbers(client, acme.headers) == []
    # The sub-account cannot release into its parent, nor the parent without acting as it.
    assert_problem(await client.delete(f"/v1/numbers/{row['id']}", headers=acme.headers),
                   404, "number_not_found")
    assert (await client.delete(f"/v1/numbers/{row['id']}",
                                headers=sub.headers)).status_code == 204


# -- inbound --------------------------------------------------------------------------------


async def test_inbound_is_stored_and_posted_as_a_signed_webhook(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await claim(client, rt, acme.headers)

    response = await client.post("/v1/sandbox/inbound", headers=acme.headers,
                                 json=inbound("Hi there 👋", to="+1 (202) 555-0173"))
    assert response.status_code == 201, response.text
    message = response.json()
    assert (message["direction"], message["status"], message["account_id"]) == (
        "inbound", "received", acme.id)
    assert (message["to"], message["from"], message["body"]) == (NUMBER, CALLER,
                                                                 "Hi there 👋")

    read = (await client.get(f"/v1/messages/{message['id']}", headers=acme.headers)).json()
    assert (read["direction"], read["status"], read["body"]) == ("inbound", "received",
                                                                 "Hi there 👋")
    assert [e["status"] for e in read["events"]] == ["received"]
    listing = (await client.get("/v1/messages", headers=acme.headers,
                                params={"direction": "inbound"})).json()["data"]
    assert [m["id"] for m in listing] == [message["id"]]
    assert (await client.get("/v1/messages", headers=acme.headers,
                             params={"direction": "outbound"})).json()["data"] == []

    await settle(rt, clock)
    assert len(hooks.requests) == 1
    request = hooks.requests[0]
    payload = request["json"]
    assert payload["type"] == "message.inbound"
    assert payload["account_id"] == acme.id
    assert payload["sequence"] == 1
    assert payload["id"].startswith("evt_")
    assert payload["data"]["message_id"] == message["id"]
    assert (payload["data"]["direction"], payload["data"]["status"]) == ("inbound", "received")
    assert payload["data"]["body"] == "Hi there 👋"
    assert (payload["data"]["to"], payload["data"]["from"]) == (NUMBER, CALLER)
    now = int(clock.now().timestamp())
    verify(acme.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
           now=now)
    with pytest.raises(SignatureError):
        verify("whsec_not-the-secret", request["raw"], request["headers"][SIGNATURE_HEADER],
               now=now)

    events = await audit_events(rt, acme.id, "messages")
    assert [(e.action, e.row_id, e.fields) for e in events] == [
        ("create", message["id"], ["body", "from", "to"])]
    assert (events[0].actor_type, events[0].actor_id) == ("api_key", acme.made.api_key_id)
    assert "Hi there" not in str(vars(events[0]))


async def test_inbound_without_an_account_webhook_is_stored_quietly(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await claim(client, rt, acme.headers)
    response = await client.post("/v1/sandbox/inbound", headers=acme.headers, json=inbound())
    assert response.status_code == 201, response.text
    await settle(rt, clock)
    assert await inbound_count(rt) == 1
    assert await count(rt, WebhookDelivery) == 0


async def test_inbound_to_another_accounts_number_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        globex: Tenant) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await client.patch("/v1/account", headers=globex.headers, json={"webhook_url": hooks.url})
    await claim(client, rt, globex.headers)
    audit_before = await count(rt, AuditEvent)
    for to in (NUMBER, "+1 202 555 0173", "+12025550199"):
        assert_problem(await client.post("/v1/sandbox/inbound", headers=acme.headers,
                                         json=inbound(to=to)), 404, "number_not_found")
    await settle(rt, clock)
    assert await inbound_count(rt) == 0
    assert await count(rt, WebhookDelivery) == 0
    assert await count(rt, AuditEvent) == audit_before
    assert hooks.requests == []
    # The owner itself may.
    response = await client.post("/v1/sandbox/inbound", headers=globex.headers,
                                 json=inbound())
    assert response.status_code == 201
    assert response.json()["account_id"] == globex.id


@pytest.mark.parametrize(("body", "code"), [
    (inbound(to="2025550173"), "invalid_phone_number"),
    (inbound(sender="not a sender!"), "invalid_sender_id"),
    (inbound(body=""), "validation_failed"),
    ({**inbound(), "channel": "whatsapp"}, "validation_failed"),
    ({**inbound(), "carrier": "x"}, "validation_failed"),
])
async def test_bad_inbound_is_refused(client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
                                      body: dict[str, str], code: str) -> None:
    await claim(client, rt, acme.headers)
    assert_problem(await client.post("/v1/sandbox/inbound", headers=acme.headers, json=body),
                   400, code)
    assert await inbound_count(rt) == 0


async def test_parent_simulates_inbound_to_its_sub_accounts_number(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        acme: Tenant) -> None:
    sub = await make_tenant(rt, "Acme Sub", parent=acme.id, webhook_url=hooks.url)
    await claim(client, rt, sub.headers)
    await claim(client, rt, acme.headers, "+442079460958")

    response = await client.post("/v1/sandbox/inbound", headers=acme.headers, json=inbound())
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["account_id"] == sub.id
    read = await client.get(f"/v1/messages/{message['id']}", headers=sub.headers)
    assert read.status_code == 200
    assert read.json()["direction"] == "inbound"
    assert_problem(await client.get(f"/v1/messages/{message['id']}", headers=acme.headers),
                   404, "message_not_found")

    await settle(rt, clock)
    assert len(hooks.requests) == 1
    request = hooks.requests[0]
    assert request["json"]["account_id"] == sub.id
    now = int(clock.now().timestamp())
    verify(sub.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
           now=now)
    with pytest.raises(SignatureError):
        verify(acme.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
               now=now)

    # The sub-account cannot simulate messages to its parent's number.
    assert_problem(await client.post("/v1/sandbox/inbound", headers=sub.headers,
                                     json=inbound(to="+442079460958")), 404,
                   "number_not_found")
    assert await inbound_count(rt) == 1


async def test_acting_as_a_sub_account_limits_inbound_to_that_sub_account(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    first = await make_tenant(rt, "Acme One", parent=acme.id)
    second = await make_tenant(rt, "Acme Two", parent=acme.id)
    await claim(client, rt, second.headers)
    as_first = {**acme.headers, "Tidings-Account": first.id}

    # Acting as one sub-account, the parent cannot reach its sibling's number...
    assert_problem(await client.post("/v1/sandbox/inbound", headers=as_first, json=inbound()),
                   404, "number_not_found")
    assert await inbound_count(rt) == 0
    # ...but acting as itself it still reaches every account below it.
    response = await client.post("/v1/sandbox/inbound", headers=acme.headers, json=inbound())
    assert response.status_code == 201, response.text
    assert response.json()["account_id"] == second.id


@pytest.mark.parametrize("terminated", ["owner", "parent"])
async def test_a_terminated_account_takes_no_inbound_message(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, terminated: str) -> None:
    sub = await make_tenant(rt, "Acme Sub", parent=acme.id)
    await claim(client, rt, sub.headers)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        account = await session.get(Account, sub.id if terminated == "owner" else acme.id)
        assert account is not None
        account.status = AccountStatus.TERMINATED.value
    message = InboundMessage(sender=CALLER, to=NUMBER, body="Hi", channel="sms",
                             carrier_message_id="c-1")
    # The carrier hears "taken" (else it would deliver again forever); nothing is stored.
    assert await take_inbound(rt, "sandbox", [message]) == [True]
    with pytest.raises(TidingsError) as refused:
        await receive_inbound(rt, sender=CALLER, to=NUMBER, body="Hi", channel="sms",
                              actor=TEST_ACTOR)
    assert refused.value.code == "account_terminated"
    assert await inbound_count(rt) == 0
    assert await count(rt, WebhookDelivery) == 0


# -- a number's own webhook URL -------------------------------------------------------------


async def set_number_hook(client: httpx.AsyncClient, tenant: Tenant, number_id: str,
                          url: str | None) -> dict[str, Any]:
    response = await client.patch(f"/v1/numbers/{number_id}", headers=tenant.headers,
                                  json={"webhook_url": url})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def inbound_to(client: httpx.AsyncClient, tenant: Tenant, to: str) -> str:
    response = await client.post("/v1/sandbox/inbound", headers=tenant.headers,
                                 json=inbound(to=to))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def received(server: HookServer) -> list[str]:
    return [r["json"]["data"]["message_id"] for r in server.requests]


async def test_a_number_with_its_own_webhook_url_posts_its_inbound_messages_there(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    first = await claim(client, rt, acme.headers)
    await claim(client, rt, acme.headers, "+442079460958")
    async with hook_server("/per-number") as own:
        changed = await set_number_hook(client, acme, first["id"], own.url)
        assert (changed["id"], changed["number"], changed["webhook_url"]) == (
            first["id"], NUMBER, own.url)
        listed = (await client.get("/v1/numbers", headers=acme.headers)).json()
        assert [n["webhook_url"] for n in listed] == [own.url, None]

        to_first = await inbound_to(client, acme, NUMBER)
        to_second = await inbound_to(client, acme, "+442079460958")
        await settle(rt, clock)
        assert received(own) == [to_first]
        assert received(hooks) == [to_second]
        request = own.requests[0]  # signed with the account's secret like every webhook
        verify(acme.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
               now=int(clock.now().timestamp()))

        # null clears it: the account's URL again.
        assert (await set_number_hook(client, acme, first["id"], None))["webhook_url"] is None
        again = await inbound_to(client, acme, NUMBER)
        await settle(rt, clock)
        assert received(own) == [to_first]
        assert received(hooks) == [to_second, again]
    events = await audit_events(rt, acme.id, "phone_numbers")
    assert [(e.action, e.fields) for e in events if e.action == "update"] == [
        ("update", ["webhook_url"])] * 2


async def test_a_number_url_serves_an_account_without_one(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        acme: Tenant) -> None:
    first = await claim(client, rt, acme.headers)
    await set_number_hook(client, acme, first["id"], hooks.url)
    message_id = await inbound_to(client, acme, NUMBER)
    await settle(rt, clock)
    assert received(hooks) == [message_id]


@pytest.mark.parametrize("body", [
    {"webhook_url": "ftp://hooks.example/in"}, {"webhook_url": "not a url"},
    {"webhook_url": "https://hooks.example/" + "x" * 2048}, {"webhook_url": 5},
    {"webhook_url": "https://hooks.example/in", "number": "+12025550100"}, [],
])
async def test_a_bad_number_webhook_url_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: Any) -> None:
    first = await claim(client, rt, acme.headers)
    assert_problem(await client.patch(f"/v1/numbers/{first['id']}", headers=acme.headers,
                                      json=body), 400, "validation_failed")
    listed = (await client.get("/v1/numbers", headers=acme.headers)).json()
    assert [n["webhook_url"] for n in listed] == [None]
    assert [e.action for e in await audit_events(rt, acme.id, "phone_numbers")] == ["create"]


async def test_another_accounts_number_url_cannot_be_set(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    held = await claim(client, rt, acme.headers)
    for number_id in (held["id"], "num_doesnotexist", held["id"] + "x" * 60):
        assert_problem(await client.patch(f"/v1/numbers/{number_id}", headers=globex.headers,
                                          json={"webhook_url": "https://hooks.example/in"}),
                       404, "number_not_found")
    listed = (await client.get("/v1/numbers", headers=acme.headers)).json()
    assert [n["webhook_url"] for n in listed] == [None]
