"""Sub-account rights over the API: a parent sets them, nothing below may be wider than
what is above it, and they hold on every send (single, fast, idempotent, batch)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, assert_problem, make_tenant, stored_counts
from tidings.accounts.models import AccountRights, MessageCount
from tidings.audit.models import AuditEvent
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}
EMAIL = {"channel": "email", "to": "bob@example.net", "from": "news@acme.example",
         "subject": "Hi", "body": "Hello"}
NOTHING_SET: dict[str, Any] = {
    "channels": None, "sender_ids": None, "monthly_message_cap": None,
    "requests_per_second": None, "may_create_subaccounts": None, "may_manage_users": None}


def acting(parent: Tenant, account_id: str) -> dict[str, str]:
    return {**parent.headers, "Tidings-Account": account_id}


def rights_path(account_id: str) -> str:
    return f"/v1/accounts/{account_id}/rights"


async def put_rights(client: httpx.AsyncClient, by: Tenant, account_id: str,
                     **rights: Any) -> dict[str, Any]:
    response = await client.put(rights_path(account_id), headers=by.headers, json=rights)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def get_rights(client: httpx.AsyncClient, by: Tenant,
                     account_id: str) -> dict[str, Any]:
    response = await client.get(rights_path(account_id), headers=by.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def messages_of(rt: Runtime, tenant: str) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == tenant)) or 0)


@pytest.fixture
async def family(rt: Runtime, acme: Tenant) -> tuple[Tenant, Tenant, Tenant]:
    """acme → child → grandchild."""
    child = await make_tenant(rt, "Child", parent=acme.id)
    grandchild = await make_tenant(rt, "Grandchild", parent=child.id)
    return acme, child, grandchild


# --------------------------------------------------------------------------- set and get

async def test_a_parent_sets_its_sub_accounts_rights_and_reads_them_back(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, _ = family
    assert await get_rights(client, parent, child.id) == {
        "account_id": child.id, **NOTHING_SET, "effective": NOTHING_SET}
    answer = await put_rights(client, parent, child.id, channels=["sms"],
                              sender_ids=["Acme", "+1 202 555 0100"], monthly_message_cap=1000,
                              requests_per_second=20, may_create_subaccounts=False)
    expected = {"channels": ["sms"], "sender_ids": ["+12025550100", "Acme"],
                "monthly_message_cap": 1000, "requests_per_second": 20,
                "may_create_subaccounts": False, "may_manage_users": None}
    assert answer == {"account_id": child.id, **expected, "effective": expected}
    assert await get_rights(client, parent, child.id) == answer
    # The sub-account reads its own rights; it cannot set them.
    assert await get_rights(client, child, child.id) == answer
    assert_problem(await client.put(rights_path(child.id), headers=child.headers, json={}),
                   404, "account_not_found")
    # Sender ids may be numbers or addresses: never stored in clear.
    async with rt.db.transaction(tenant=parent.id, write=False) as session:
        row = await session.get(AccountRights, child.id)
    assert row is not None
    assert row.tenant_id == parent.id
    assert row.sender_ids_enc is not None
    assert b"12025550100" not in row.sender_ids_enc
    async with rt.db.transaction(tenant=parent.id, write=False) as session:
        audited = (await session.scalars(select(AuditEvent).where(
            AuditEvent.table_name == "account_rights"))).all()
    assert [(a.row_id, a.action) for a in audited] == [(child.id, "create")]


async def test_a_grandchild_is_governed_by_every_account_above_it(
        client: httpx.AsyncClient, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    await put_rights(client, parent, child.id, channels=["sms", "email"],
                     monthly_message_cap=100)
    answer = await put_rights(client, child, grandchild.id, channels=["email"],
                              requests_per_second=5)
    assert answer["effective"]["channels"] == ["email"]
    assert answer["effective"]["monthly_message_cap"] == 100
    assert answer["effective"]["requests_per_second"] == 5
    # The grandparent sets them too (through its own subtree); the parent narrowing later
    # narrows the grandchild at once, whatever the grandchild's row says.
    await put_rights(client, parent, grandchild.id, channels=["email"], sender_ids=["Acme"])
    await put_rights(client, parent, child.id, channels=["sms"])
    read = await get_rights(client, parent, grandchild.id)
    assert read["channels"] == ["email"]
    assert read["effective"]["channels"] == []
    assert await rt_rps(client, parent, grandchild.id) is None


async def rt_rps(client: httpx.AsyncClient, by: Tenant, account_id: str) -> int | None:
    value: int | None = (await get_rights(client, by, account_id))["effective"][
        "requests_per_second"]
    return value


async def test_the_rights_cache_exposes_requests_per_second_for_the_rate_limiter(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    assert await rt.account_rights.requests_per_second(grandchild.id) is None
    await put_rights(client, parent, child.id, requests_per_second=7)
    assert await rt.account_rights.requests_per_second(grandchild.id) == 7
    assert await rt.account_rights.requests_per_second(parent.id) is None


# --------------------------------------------------------------------------- bad input

async def test_a_right_wider_than_the_parents_own_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    await put_rights(client, parent, child.id, channels=["sms"], sender_ids=["Acme"],
                     monthly_message_cap=100, requests_per_second=10,
                     may_create_subaccounts=False, may_manage_users=False)
    await put_rights(client, child, grandchild.id, channels=["sms"], monthly_message_cap=50)
    before = await get_rights(client, child, grandchild.id)
    for wider in ({"channels": ["sms", "email"]}, {"sender_ids": ["Acme", "Other"]},
                  {"monthly_message_cap": 101}, {"requests_per_second": 11},
                  {"may_create_subaccounts": True}, {"may_manage_users": True}):
        response = await client.put(rights_path(grandchild.id), headers=child.headers,
                                    json={"channels": ["sms"], **wider})
        assert_problem(response, 400, "rights_wider_than_parent")
        assert response.json()["fields"] == list(wider)
    assert await get_rights(client, child, grandchild.id) == before
    # The root account has no restriction: its children may have any right.
    await put_rights(client, parent, child.id, channels=["sms", "email", "whatsapp"],
                     monthly_message_cap=10**9, may_create_subaccounts=True)


@pytest.mark.parametrize(("body", "code"), [
    ({"channel": ["sms"]}, "validation_failed"),  # unknown field
    ({"monthly_message_cap": -1}, "validation_failed"),
    ({"monthly_message_cap": "10"}, "validation_failed"),
    ({"requests_per_second": 0}, "validation_failed"),
    ({"channels": ["fax"]}, "validation_failed"),
    ({"channels": "sms"}, "validation_failed"),
    ({"sender_ids": [f"S{n}" for n in range(51)]}, "validation_failed"),
    ({"sender_ids": [""]}, "validation_failed"),
    ({"sender_ids": ["not a sender id!"]}, "invalid_sender_id"),
    ({"may_manage_users": "yes"}, "validation_failed"),
])
async def test_garbage_rights_are_refused_and_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant],
        body: dict[str, Any], code: str) -> None:
    parent, child, _ = family
    await put_rights(client, parent, child.id, monthly_message_cap=5)
    before = await get_rights(client, parent, child.id)
    assert_problem(await client.put(rights_path(child.id), headers=parent.headers, json=body),
                   400, code)
    assert await get_rights(client, parent, child.id) == before


async def test_rights_of_an_account_outside_ones_subtree_are_not_found(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant],
        globex: Tenant) -> None:
    parent, child, grandchild = family
    stranger = await make_tenant(rt, "Globex child", parent=globex.id)
    for by, target in ((parent, stranger.id), (globex, child.id), (child, parent.id),
                       (grandchild, child.id), (parent, "acc_nope"), (parent, "acc_" + "z" * 26)):
        for method in ("GET", "PUT"):
            response = await client.request(method, rights_path(target), headers=by.headers,
                                            json={} if method == "PUT" else None)
            assert_problem(response, 404, "account_not_found")
        for action in ("suspend", "resume"):
            response = await client.post(f"/v1/accounts/{target}/{action}",
                                         headers=by.headers, json={"reason": "x"})
            assert_problem(response, 404, "account_not_found")
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(AccountRights)) == 0


# --------------------------------------------------------------------------- enforcement

async def test_channels_and_sender_ids_hold_on_every_send(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    await put_rights(client, parent, child.id, channels=["sms"], sender_ids=["Acme"])
    before = await stored_counts(rt)
    batch = {"from": "Other", "body": "Hi", "recipients": [{"to": "+12025550173"}]}
    for headers in (child.headers, grandchild.headers, acting(parent, child.id)):
        for extra in ({}, {"Idempotency-Key": "k1"}):
            assert_problem(await client.post("/v1/messages", json=EMAIL,
                                             headers={**headers, **extra}),
                           403, "channel_not_allowed")
            assert_problem(await client.post("/v1/messages", json={**SEND, "from": "Other"},
                                             headers={**headers, **extra}),
                           403, "sender_id_not_allowed")
        # A fallback channel counts as a channel the message may go on.
        assert_problem(await client.post("/v1/messages", headers=headers, json={
            **SEND, "channels": ["sms", "whatsapp"]}), 403, "channel_not_allowed")
        assert_problem(await client.post("/v1/messages/batch", headers=headers, json=batch),
                       403, "sender_id_not_allowed")
    assert await stored_counts(rt) == before
    # What is allowed still goes, and the parent itself is not restricted.
    for headers in (child.headers, grandchild.headers, parent.headers):
        assert (await client.post("/v1/messages", headers=headers, json=SEND)).status_code == 201
    assert (await client.post("/v1/messages", headers=parent.headers,
                              json={**SEND, "from": "Other"})).status_code == 201


async def test_a_batch_is_refused_whole_when_sms_is_not_among_the_channels(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, _ = family
    await put_rights(client, parent, child.id, channels=["email"])
    batch = {"from": "Acme", "body": "Hi", "recipients": [{"to": "+12025550173"}]}
    assert_problem(await client.post("/v1/messages/batch", headers=child.headers, json=batch),
                   403, "channel_not_allowed")
    assert await messages_of(rt, child.id) == 0


async def test_the_monthly_cap_holds_and_a_refused_message_is_not_counted(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, _ = family
    # Sent before the cap: it counts towards the month.
    assert (await client.post("/v1/messages", headers=child.headers, json=SEND)).status_code == 201
    await put_rights(client, parent, child.id, monthly_message_cap=3)
    assert (await client.post("/v1/messages", headers=child.headers, json=SEND)).status_code == 201
    assert (await client.post("/v1/messages", json=SEND, headers={
        **child.headers, "Idempotency-Key": "once"})).status_code == 201
    for extra in ({}, {"Idempotency-Key": "twice"}):
        assert_problem(await client.post("/v1/messages", json=SEND,
                                         headers={**child.headers, **extra}),
                       403, "monthly_cap_reached")
    # A replay is the earlier message, not a new one: still answered.
    assert (await client.post("/v1/messages", json=SEND, headers={
        **child.headers, "Idempotency-Key": "once"})).status_code == 201
    assert await messages_of(rt, child.id) == 3
    async with rt.db.transaction(tenant=child.id, write=False) as session:
        counts = (await session.scalars(select(MessageCount.count))).all()
    assert counts == [3]
    # Raised: the room is what the month has left.
    await put_rights(client, parent, child.id, monthly_message_cap=4)
    assert (await client.post("/v1/messages", headers=child.headers, json=SEND)).status_code == 201
    assert_problem(await client.post("/v1/messages", headers=child.headers, json=SEND),
                   403, "monthly_cap_reached")
    # Another account is not held by it.
    assert (await client.post("/v1/messages", headers=parent.headers, json=SEND)).status_code == 201


async def test_a_parents_cap_holds_its_sub_accounts_too(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    await put_rights(client, parent, child.id, monthly_message_cap=1)
    for tenant in (child, grandchild):
        assert (await client.post("/v1/messages", headers=tenant.headers,
                                  json=SEND)).status_code == 201
        assert_problem(await client.post("/v1/messages", headers=tenant.headers, json=SEND),
                       403, "monthly_cap_reached")


@pytest.mark.parametrize("key", [None, "batch-1"])
async def test_a_batch_takes_what_the_cap_has_room_for_recipient_by_recipient(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant],
        key: str | None) -> None:
    parent, child, _ = family
    await put_rights(client, parent, child.id, monthly_message_cap=3)
    assert (await client.post("/v1/messages", headers=child.headers, json=SEND)).status_code == 201
    batch = {"from": "Acme", "body": "Hi", "recipients": [
        {"to": f"+1202555017{n}"} for n in range(4)]}
    headers = child.headers if key is None else {**child.headers, "Idempotency-Key": key}
    response = await client.post("/v1/messages/batch", headers=headers, json=batch)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    assert [r["status"] for r in answer["results"]] == [
        "accepted", "accepted", "rejected", "rejected"]
    assert {r["error"]["code"] for r in answer["results"][2:]} == {"monthly_cap_reached"}
    assert await messages_of(rt, child.id) == 3
    again = await client.post("/v1/messages/batch", headers=headers, json=batch)
    assert again.json()["accepted"] == (0 if key is None else 2)  # a replay: the same answer
    assert await messages_of(rt, child.id) == 3


async def test_the_cap_holds_exactly_under_concurrent_sends(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, _ = family
    await put_rights(client, parent, child.id, monthly_message_cap=5)
    answers = await asyncio.gather(*(
        client.post("/v1/messages", headers=child.headers, json=SEND) for _ in range(12)))
    assert sorted(a.status_code for a in answers) == [201] * 5 + [403] * 7
    assert await messages_of(rt, child.id) == 5


async def test_management_rights_hold_on_sub_accounts_and_keys(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    await put_rights(client, parent, child.id, may_create_subaccounts=False,
                     may_manage_users=False)
    for headers in (child.headers, grandchild.headers):
        assert_problem(await client.post("/v1/accounts", headers=headers,
                                         json={"name": "More"}),
                       403, "subaccounts_not_allowed")
        assert_problem(await client.post("/v1/keys", headers=headers, json={"name": "more"}),
                       403, "user_management_not_allowed")
        assert_problem(await client.post("/v1/users", headers=headers, json={
            "email": "new.person@example.com", "role": "support"}),
                       403, "user_management_not_allowed")
    assert len((await client.get("/v1/keys", headers=child.headers)).json()) == 1
    assert (await client.get("/v1/users", headers=child.headers)).json() == []
    assert len((await client.get("/v1/accounts", headers=child.headers)).json()) == 1
    assert (await client.post("/v1/accounts", headers=parent.headers,
                              json={"name": "Sibling"})).status_code == 201
