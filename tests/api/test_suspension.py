"""A parent suspends and resumes its sub-accounts over the API: the whole subtree is held
back, with a reason, audited; only who suspended (or an account above it) lifts it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import TEST_ACTOR, Tenant, assert_problem, make_tenant
from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.suspension import OPERATOR, do_set_status
from tidings.audit.models import AuditEvent
from tidings.runtime import Runtime

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


@pytest.fixture
async def family(rt: Runtime, acme: Tenant) -> tuple[Tenant, Tenant, Tenant]:
    """acme → child → grandchild."""
    child = await make_tenant(rt, "Child", parent=acme.id)
    grandchild = await make_tenant(rt, "Grandchild", parent=child.id)
    return acme, child, grandchild


async def post(client: httpx.AsyncClient, by: Tenant, account_id: str, action: str,
               **body: Any) -> httpx.Response:
    return await client.post(f"/v1/accounts/{account_id}/{action}", headers=by.headers,
                             json=body)


async def sends(client: httpx.AsyncClient, tenant: Tenant) -> int:
    return (await client.post("/v1/messages", headers=tenant.headers, json=SEND)).status_code


async def test_suspending_a_sub_account_holds_its_subtree_and_resuming_restores_it(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    response = await post(client, parent, child.id, "suspend", reason="Unpaid invoice 42")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["status_reason"]) == (
        "suspended", "Unpaid invoice 42")
    for tenant in (child, grandchild):
        assert_problem(await client.post("/v1/messages", headers=tenant.headers, json=SEND),
                       403, "account_suspended")
    assert await sends(client, parent) == 201
    # The reason is free text: kept encrypted, and the audit event names fields only.
    async with rt.db.transaction(tenant=child.id, write=False) as session:
        account = await session.get(Account, child.id)
        events = (await session.scalars(select(AuditEvent).where(
            AuditEvent.table_name == "accounts", AuditEvent.action == "update"))).all()
    assert account is not None
    assert account.status_reason_enc is not None
    assert b"Unpaid" not in account.status_reason_enc
    assert account.suspended_by == parent.id
    assert [(e.actor_id, e.fields) for e in events] == [
        (parent.made.api_key_id, ["status", "status_reason", "suspended_by"])]

    for tenant in (child, grandchild):  # no new credential slips out of a suspension
        assert_problem(await client.post("/v1/keys", headers=tenant.headers,
                                         json={"name": "escape"}), 403, "account_suspended")
    assert [k["name"] for k in (await client.get("/v1/keys", headers=child.headers)).json()] \
        == ["default"]

    response = await post(client, parent, child.id, "resume")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["status_reason"]) == ("active", None)
    for tenant in (child, grandchild):
        assert await sends(client, tenant) == 201
    assert (await client.post("/v1/keys", headers=child.headers,
                              json={"name": "after"})).status_code == 201


async def test_a_resume_restores_the_status_the_account_had(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    trial = await make_tenant(rt, "Trial child", parent=acme.id, status=AccountStatus.TRIAL)
    assert (await post(client, acme, trial.id, "suspend", reason="Spam")).status_code == 200
    assert (await post(client, acme, trial.id, "resume")).json()["status"] == "trial"


async def test_a_suspension_from_above_is_lifted_only_from_there(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, grandchild = family
    assert (await post(client, parent, grandchild.id, "suspend",
                       reason="Fraud review")).status_code == 200
    # The child is between: it may not lift what its parent decided.
    assert_problem(await post(client, child, grandchild.id, "resume"), 403,
                   "suspension_not_yours")
    assert (await post(client, parent, grandchild.id, "resume")).status_code == 200
    # One the child made, its parent may lift too.
    assert (await post(client, child, grandchild.id, "suspend", reason="x")).status_code == 200
    assert (await post(client, parent, grandchild.id, "resume")).status_code == 200


async def test_the_operators_suspension_is_the_operators_to_lift(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, _ = family
    keys = await rt.vault.keys_for(child.id)
    async with rt.db.transaction(tenant=child.id) as session:
        account = await session.get(Account, child.id)
        assert account is not None
        await do_set_status(session, account=account, keys=keys,
                            status=AccountStatus.SUSPENDED, reason="Abuse report",
                            by=OPERATOR, actor=TEST_ACTOR, now=rt.clock.now())
    rt.auth.invalidate()
    assert_problem(await post(client, parent, child.id, "resume"), 403, "suspension_not_yours")
    assert_problem(await client.post("/v1/messages", headers=child.headers, json=SEND),
                   403, "account_suspended")


@pytest.mark.parametrize(("action", "body", "status", "code"), [
    ("suspend", {}, 400, "validation_failed"),  # a reason is required
    ("suspend", {"reason": ""}, 400, "validation_failed"),
    ("suspend", {"reason": "x" * 501}, 400, "validation_failed"),
    ("suspend", {"reason": "x", "until": "later"}, 400, "validation_failed"),
    ("resume", {}, 409, "account_not_suspended"),
])
async def test_bad_suspensions_are_refused_and_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, family: tuple[Tenant, Tenant, Tenant],
        action: str, body: dict[str, Any], status: int, code: str) -> None:
    parent, child, _ = family
    assert_problem(await post(client, parent, child.id, action, **body), status, code)
    assert (await client.get("/v1/account", headers=child.headers)).json()["status"] == "active"
    assert await sends(client, child) == 201


async def test_a_suspended_account_is_not_suspended_twice(
        client: httpx.AsyncClient, family: tuple[Tenant, Tenant, Tenant]) -> None:
    parent, child, _ = family
    assert (await post(client, parent, child.id, "suspend", reason="a")).status_code == 200
    assert_problem(await post(client, parent, child.id, "suspend", reason="b"), 409,
                   "account_already_suspended")
    response = await client.get("/v1/accounts", headers=parent.headers)
    assert [a["status"] for a in response.json()] == ["suspended"]
