"""An account's users over the API: invited with a temporary password, listed, given
other roles, disabled; nobody hands out more than they hold, the account keeps an
owner, and nobody reaches another account's users."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tidings.runtime import Runtime

from .people import person, session_headers
from .test_auth_api import assert_problem, log_in


async def owner_headers(rt: Runtime, tenant: Tenant) -> dict[str, str]:
    return await session_headers(rt, await person(rt, tenant.id, "owner"))


async def test_an_owner_invites_a_user_who_logs_in_with_the_temporary_password(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    headers = await owner_headers(rt, acme)
    made = await client.post("/v1/users", headers=headers,
                             json={"email": "Bea@Example.com", "role": "support"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["email"], body["role"]) == ("Bea@example.com", "support")
    assert len(body["temporary_password"]) >= 20

    listed = (await client.get("/v1/users", headers=headers)).json()
    assert {u["email"] for u in listed} >= {"Bea@example.com"}
    assert "temporary_password" not in str(listed)
    first = await log_in(client, "bea@example.com", body["temporary_password"])
    assert first.json()["user"]["must_change_password"] is True

    events = (await client.get("/v1/audit-events", headers=headers,
                               params={"action": "user.create"})).json()["data"]
    assert events[0]["row_id"] == body["id"]
    assert events[0]["actor"].startswith("user:usr_")


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"email": "x@example.com", "role": "root"}, 400, "unknown_role"),
    ({"email": "not an address", "role": "support"}, 400, "invalid_email_address"),
    ({"email": "x@example.com"}, 400, "validation_failed"),
    ({"email": "x@example.com", "role": "support", "password": "mine"}, 400,
     "validation_failed"),
    ({"email": "x" * 400, "role": "support"}, 400, "validation_failed"),
    ({"email": "x@example.com", "role": "owner"}, 403, "role_too_wide"),
])
async def test_bad_invitations_are_refused_and_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, Any],
        status: int, code: str) -> None:
    admin = await session_headers(rt, await person(rt, acme.id, "admin"))
    before = (await client.get("/v1/users", headers=admin)).json()
    assert_problem(await client.post("/v1/users", headers=admin, json=body), status, code)
    assert (await client.get("/v1/users", headers=admin)).json() == before


async def test_an_address_that_has_a_user_is_a_conflict(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await person(rt, globex.id, "developer", email="taken@example.com")
    headers = await owner_headers(rt, acme)
    assert_problem(await client.post("/v1/users", headers=headers, json={
        "email": "TAKEN@example.com", "role": "developer"}), 409, "email_taken")


async def test_disabling_a_user_ends_its_sessions_and_enabling_lets_it_log_in(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    headers = await owner_headers(rt, acme)
    dev = await person(rt, acme.id, "developer", mfa=False)
    dev_headers = await session_headers(rt, dev)
    assert (await client.get("/v1/messages", headers=dev_headers)).status_code == 200

    off = await client.patch(f"/v1/users/{dev.user_id}", headers=headers,
                             json={"disabled": True})
    assert off.status_code == 200, off.text
    assert off.json()["status"] == "disabled"
    assert_problem(await client.get("/v1/messages", headers=dev_headers), 401, "session_ended")
    assert_problem(await log_in(client, dev.email, dev.password), 401, "invalid_credentials")

    on = await client.patch(f"/v1/users/{dev.user_id}", headers=headers,
                            json={"disabled": False, "role": "support"})
    assert (on.json()["status"], on.json()["role"]) == ("active", "support")
    again = await log_in(client, dev.email, dev.password)
    assert again.status_code == 200, again.text
    assert again.json()["user"]["role"] == "support"


async def test_an_admin_cannot_touch_an_owner_nor_anyone_their_own_role(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "owner")
    admin = await person(rt, acme.id, "admin")
    admin_headers = await session_headers(rt, admin)
    assert_problem(await client.patch(f"/v1/users/{owner.user_id}", headers=admin_headers,
                                      json={"disabled": True}), 403, "role_too_wide")
    assert_problem(await client.patch(f"/v1/users/{admin.user_id}", headers=admin_headers,
                                      json={"role": "developer"}), 403, "cannot_change_self")


async def test_the_account_keeps_an_active_owner(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    first = await person(rt, acme.id, "owner")
    second = await person(rt, acme.id, "owner", email="second.owner@example.com")
    demoted = await client.patch(f"/v1/users/{second.user_id}",
                                 headers=await session_headers(rt, first),
                                 json={"role": "admin"})
    assert demoted.status_code == 200, demoted.text
    # Only a credential of the whole account (an API key) could go further.
    for change in ({"disabled": True}, {"role": "admin"}):
        assert_problem(await client.patch(f"/v1/users/{first.user_id}",
                                          headers=acme.headers, json=change),
                       409, "last_owner")
    listed = (await client.get("/v1/users", headers=acme.headers)).json()
    assert [u["id"] for u in listed if u["role"] == "owner"] == [first.user_id]


async def test_another_accounts_user_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    theirs = await person(rt, globex.id, "developer")
    headers = await owner_headers(rt, acme)
    for user_id in (theirs.user_id, "usr_nothing", "x" * 500, "%00"):
        response = await client.patch(f"/v1/users/{user_id}", headers=headers,
                                      json={"disabled": True})
        assert_problem(response, 404, "user_not_found")
    globex_headers = await owner_headers(rt, globex)
    listed = (await client.get("/v1/users", headers=globex_headers)).json()
    assert {u["status"] for u in listed} == {"active"}


@pytest.mark.parametrize("body", [{"role": "root"}, {"disabled": "yes"}, {"role": 7},
                                  {"email": "new@example.com"}])
async def test_bad_user_changes_are_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, Any]) -> None:
    headers = await owner_headers(rt, acme)
    dev = await person(rt, acme.id, "developer")
    response = await client.patch(f"/v1/users/{dev.user_id}", headers=headers, json=body)
    assert response.status_code == 400, response.text
    [row] = [u for u in (await client.get("/v1/users", headers=headers)).json()
             if u["id"] == dev.user_id]
    assert (row["role"], row["status"]) == ("developer", "active")
