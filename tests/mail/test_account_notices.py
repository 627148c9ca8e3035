"""The account's owners are told by mail when it is suspended, with the reason."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant, make_tenant
from tests.mail.test_mail_jobs import mailbox
from tests.users.people import person
from tidings.runtime import Runtime


async def test_suspending_a_sub_account_mails_its_owners_the_reason(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    child = await make_tenant(rt, "Child", parent=acme.id)
    owner = await person(rt, child.id, "owner", email="owner@child.example")
    await person(rt, child.id, "developer", email="dev@child.example")  # not an owner
    response = await client.post(f"/v1/accounts/{child.id}/suspend", headers=acme.headers,
                                 json={"reason": "Unpaid invoice 42"})
    assert response.status_code == 200, response.text
    await rt.worker_pool().drain()
    [kept] = await mailbox(rt)
    assert (kept.kind, kept.account_id, kept.to) == ("suspension", child.id, owner.email)
    assert "Unpaid invoice 42" in kept.body
    resumed = await client.post(f"/v1/accounts/{child.id}/resume", headers=acme.headers,
                                json={})
    assert resumed.status_code == 200, resumed.text
    await rt.worker_pool().drain()
    assert len(await mailbox(rt)) == 1  # a resume sends nothing


async def test_a_refused_suspension_mails_nobody(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await person(rt, globex.id, "owner", email="owner@globex.example")
    response = await client.post(f"/v1/accounts/{globex.id}/suspend", headers=acme.headers,
                                 json={"reason": "Not mine to suspend"})
    assert response.status_code == 404, response.text
    await rt.worker_pool().drain()
    assert await mailbox(rt) == []
