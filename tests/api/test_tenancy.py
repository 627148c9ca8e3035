"""Tenants are walled off from each other; parents reach down, never up or sideways.

Another tenant's resources must look exactly like missing ones (404, never 403).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, assert_problem, make_tenant, settle
from tidings.accounts.models import Account, AccountStatus
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}



async def send(client: httpx.AsyncClient, headers: dict[str, str],
               **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/messages", headers=headers, json={**SEND, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def message_count(rt: Runtime, tenant: str | None = None) -> int:
    query = select(func.count()).select_from(Message)
    if tenant is not None:
        query = query.where(Message.tenant_id == tenant)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(query) or 0)


async def listed_ids(client: httpx.AsyncClient, headers: dict[str, str],
                     **params: str) -> set[str]:
    response = await client.get("/v1/messages", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["data"]}


def acting(parent: Tenant, account_id: str) -> dict[str, str]:
    return {**parent.headers, "Tidings-Account": account_id}


async def test_another_tenant_cannot_read_list_or_cancel(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    later = (clock.now() + timedelta(hours=1)).isoformat()
    scheduled = await send(client, acme.headers, send_at=later)
    assert scheduled["status"] == "scheduled"
    now = await send(client, acme.headers)
    await settle(rt, clock)

    for message in (scheduled, now):
        assert_problem(await client.get(f"/v1/messages/{message['id']}",
                                        headers=globex.headers), 404, "message_not_found")
        assert_problem(await client.post(f"/v1/messages/{message['id']}/cancel",
                                         headers=globex.headers), 404, "message_not_found")
    assert await listed_ids(client, globex.headers) == set()
    assert await listed_ids(client, globex.headers, to="+12025550173") == set()
    assert await listed_ids(client, globex.headers, status="scheduled") == set()
    # Naming Acme as the account to act on does not help Globex either.
    assert_problem(await client.get(f"/v1/messages/{now['id']}",
                                    headers=acting(globex, acme.id)), 404, "account_not_found")

    # Acme still sees both, and its scheduled message was not canceled by Globex...
    assert await listed_ids(client, acme.headers) == {scheduled["id"], now["id"]}
    read = await client.get(f"/v1/messages/{scheduled['id']}", headers=acme.headers)
    assert read.json()["status"] == "scheduled"
    # ...though Acme itself can cancel it (the refusal above was about the tenant).
    canceled = await client.post(f"/v1/messages/{scheduled['id']}/cancel",
                                 headers=acme.headers)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"


async def test_parent_acts_on_its_sub_account_with_the_header(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sub = await make_tenant(rt, "Acme Europe", parent=acme.id)
    as_sub = acting(acme, sub.id)

    account = await client.get("/v1/account", headers=as_sub)
    assert account.status_code == 200
    assert account.json()["id"] == sub.id
    message = await send(client, as_sub)
    assert message["account_id"] == sub.id
    await settle(rt, clock)

    for headers in (as_sub, sub.headers):
        read = await client.get(f"/v1/messages/{message['id']}", headers=headers)
        assert read.status_code == 200, read.text
        assert read.json()["account_id"] == sub.id
        assert await listed_ids(client, headers) == {message["id"]}
    # Without the header the parent acts as itself, and the message is not its own.
    assert_problem(await client.get(f"/v1/messages/{message['id']}", headers=acme.headers),
                   404, "message_not_found")
    assert await listed_ids(client, acme.headers) == set()
    assert await message_count(rt, acme.id) == 0

    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        event = await session.scalar(select(AuditEvent).where(
            AuditEvent.tenant_id == sub.id, AuditEvent.table_name == "messages"))
    assert event is not None
    assert (event.actor_type, event.actor_id, event.row_id) == (
        "api_key", acme.made.api_key_id, message["id"])


async def test_grandparent_reaches_a_grandchild(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    child = await make_tenant(rt, "Child", parent=acme.id)
    grandchild = await make_tenant(rt, "Grandchild", parent=child.id)
    response = await client.get("/v1/account", headers=acting(acme, grandchild.id))
    assert response.status_code == 200
    assert response.json()["id"] == grandchild.id
    response = await client.get("/v1/account", headers=acting(child, grandchild.id))
    assert response.status_code == 200
    assert response.json()["id"] == grandchild.id
    # ...but the grandchild cannot reach up to either.
    for target in (child.id, acme.id):
        assert_problem(await client.get("/v1/account", headers=acting(grandchild, target)),
                       404, "account_not_found")


async def test_sub_account_cannot_act_on_its_parent_nor_siblings(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    sub1 = await make_tenant(rt, "Sub one", parent=acme.id)
    sub2 = await make_tenant(rt, "Sub two", parent=acme.id)
    forbidden = [(sub1, acme.id), (sub1, sub2.id), (sub2, sub1.id), (globex, sub1.id),
                 (acme, globex.id), (sub1, "acc_doesnotexist")]
    for actor, target in forbidden:
        headers = acting(actor, target)
        assert_problem(await client.get("/v1/account", headers=headers), 404,
                       "account_not_found")
        assert_problem(await client.post("/v1/messages", headers=headers, json=SEND), 404,
                       "account_not_found")
        assert_problem(await client.get("/v1/messages", headers=headers), 404,
                       "account_not_found")
        assert_problem(await client.post("/v1/keys", headers=headers, json={}), 404,
                       "account_not_found")
    await settle(rt, clock)
    assert await message_count(rt) == 0
    for tenant in (acme, sub1, sub2, globex):
        keys = (await client.get("/v1/keys", headers=tenant.headers)).json()
        assert [k["id"] for k in keys] == [tenant.made.api_key_id]


async def test_suspended_account_cannot_send(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    held = await make_tenant(rt, "Held", status=AccountStatus.SUSPENDED)
    assert_problem(await client.post("/v1/messages", headers=held.headers, json=SEND), 403,
                   "account_suspended")
    batch = {"from": "Held", "body": "Hi {name}",
             "recipients": [{"to": "+12025550173", "variables": {"name": "Ann"}}]}
    assert_problem(await client.post("/v1/messages/batch", headers=held.headers, json=batch),
                   403, "account_suspended")
    await settle(rt, clock)
    assert await message_count(rt) == 0
    # Suspension stops sending, not reading.
    assert (await client.get("/v1/messages", headers=held.headers)).status_code == 200
    assert (await client.get("/v1/account", headers=held.headers)).json()["status"] == (
        "suspended")


async def test_a_suspended_parent_holds_back_its_whole_subtree_whoever_acts(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    parent = await make_tenant(rt, "Held parent", status=AccountStatus.SUSPENDED)
    child = await make_tenant(rt, "Active child", parent=parent.id)
    grandchild = await make_tenant(rt, "Active grandchild", parent=child.id)
    batch = {"from": "Acme", "body": "Hi",
             "recipients": [{"to": "+12025550173", "variables": {}}]}
    for headers in (acting(parent, child.id), child.headers, grandchild.headers,
                    acting(child, grandchild.id)):
        assert_problem(await client.post("/v1/messages", headers=headers, json=SEND), 403,
                       "account_suspended")
        assert_problem(await client.post("/v1/messages", json=SEND, headers={
            **headers, "Idempotency-Key": "k1"}), 403, "account_suspended")
        assert_problem(await client.post("/v1/messages/batch", headers=headers, json=batch),
                       403, "account_suspended")
        assert_problem(await client.post("/v1/accounts", headers=headers,
                                         json={"name": "Escape"}), 403, "account_suspended")
        # Suspension stops sending, not reading.
        assert (await client.get("/v1/messages", headers=headers)).status_code == 200
    await settle(rt, clock)
    assert await message_count(rt) == 0
    listed = (await client.get("/v1/accounts", headers=child.headers)).json()
    assert [a["id"] for a in listed] == [grandchild.id]


async def test_a_parent_suspended_later_holds_back_sub_account_keys_at_once(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    child = await make_tenant(rt, "Child", parent=acme.id)
    await send(client, child.headers)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        account = await session.get(Account, acme.id)
        assert account is not None
        account.status = AccountStatus.SUSPENDED.value
    rt.auth.invalidate()
    assert_problem(await client.post("/v1/messages", headers=child.headers, json=SEND), 403,
                   "account_suspended")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/account", None),
    ("GET", "/v1/messages", None),
    ("POST", "/v1/messages", SEND),
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {}),
    ("PATCH", "/v1/account", {"name": "Back"}),
])
async def test_terminated_account_key_is_refused(
        client: httpx.AsyncClient, rt: Runtime, method: str, path: str,
        body: dict[str, Any] | None) -> None:
    gone = await make_tenant(rt, "Gone", status=AccountStatus.TERMINATED)
    response = await client.request(method, path, headers=gone.headers, json=body)
    assert_problem(response, 403, "account_terminated")
    assert await message_count(rt) == 0


async def test_a_terminated_parent_ends_its_sub_accounts_whoever_acts(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    parent = await make_tenant(rt, "Gone parent", status=AccountStatus.TERMINATED)
    child = await make_tenant(rt, "Child", parent=parent.id)
    for headers in (acting(parent, child.id), child.headers):
        assert_problem(await client.get("/v1/account", headers=headers), 403,
                       "account_terminated")
        assert_problem(await client.post("/v1/messages", headers=headers, json=SEND), 403,
                       "account_terminated")
        assert_problem(await client.post("/v1/keys", headers=headers, json={}), 403,
                       "account_terminated")
        assert_problem(await client.post("/v1/accounts", headers=headers,
                                         json={"name": "Escape"}), 403, "account_terminated")
    await settle(rt, clock)
    assert await message_count(rt) == 0
