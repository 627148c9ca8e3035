"""The operator's staff log in with a second factor and use the operator API; they read
a client's message content only under a break-glass grant the client can see."""

from __future__ import annotations

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from tests.api.test_operator_api import operator_key
from tests.conftest import TEST_ACTOR, Tenant
from tests.users.people import PASSWORD, person, session_headers
from tests.users.test_auth_api import assert_problem, log_in
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.storage.keystore import tenant_keys_table
from tidings.users.service import create_user

NUMBER = "+12025550173"


async def test_staff_log_in_enrol_and_then_use_the_operator_api(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    made = await create_user(rt, account_id=None, email="ops@example.com", role="operator",
                             actor=TEST_ACTOR)
    first = await log_in(client, "ops@example.com", made.temporary_password)
    token = {"Authorization": f"Bearer {first.json()['token']}"}
    assert_problem(await client.get("/v1/operator/connectors", headers=token), 403,
                   "password_change_required")
    changed = await client.post("/v1/auth/password", headers=token, json={
        "current_password": made.temporary_password, "new_password": PASSWORD})
    assert changed.status_code == 204, changed.text
    assert_problem(await client.get("/v1/operator/connectors", headers=token), 403,
                   "mfa_required")
    secret = (await client.post("/v1/auth/mfa/totp", headers=token)).json()["secret"]
    confirmed = await client.post("/v1/auth/mfa/totp/confirm", headers=token,
                                  json={"code": pyotp.TOTP(secret).at(clock.now())})
    assert confirmed.status_code == 200, confirmed.text
    assert (await client.get("/v1/operator/connectors", headers=token)).status_code == 200
    session = (await client.get("/v1/auth/session", headers=token)).json()
    assert (session["account_id"], session["permissions"]) == (None, [])
    # Staff are not members of the accounts they look after.
    assert_problem(await client.get("/v1/messages", headers=token), 403, "not_an_account_user")
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    assert_problem(await client.get("/v1/operator/connectors", headers=owner), 403,
                   "not_operator_staff")


async def sent(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post("/v1/messages", headers=tenant.headers,
                                 json={"to": NUMBER, "from": "Acme", "body": "secret 4711"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_content_only_under_a_grant_that_the_account_sees(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    key_id, secret = await operator_key(rt, clock)
    ops = {"Authorization": f"Bearer {secret}"}
    message_id = await sent(client, acme)
    path = f"/v1/operator/accounts/{acme.id}/messages/{message_id}"
    masked = (await client.get(path, headers=ops)).json()
    assert (masked["to"], masked["body"]) == ("+1202555****", None)

    grant = await client.post(f"/v1/operator/accounts/{acme.id}/break-glass", headers=ops,
                              json={"reason": "Ticket 881: client asks why it failed",
                                    "minutes": 30})
    assert grant.status_code == 201, grant.text
    full = (await client.get(path, headers=ops)).json()
    assert (full["to"], full["body"]) == (NUMBER, "secret 4711")

    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    listed = (await client.get("/v1/account/break-glass", headers=owner)).json()
    assert [(g["operator"], g["reason"]) for g in listed] == [
        (key_id, "Ticket 881: client asks why it failed")]
    events = (await client.get("/v1/audit-events", headers=owner,
                               params={"actor": f"operator:{key_id}"})).json()["data"]
    assert [e["action"] for e in events] == ["break_glass.read", "break_glass"]

    clock.advance(30 * 60)
    after = (await client.get(path, headers=ops)).json()
    assert after["body"] is None


@pytest.mark.parametrize(("body", "code"), [
    ({"reason": "because", "minutes": 30}, "reason_required"),
    ({"reason": "          x         ", "minutes": 30}, "reason_required"),
    ({"reason": "Ticket 881 needs it", "minutes": 0}, "validation_failed"),
    ({"reason": "Ticket 881 needs it", "minutes": 241}, "validation_failed"),
    ({"reason": "Ticket 881 needs it"}, "validation_failed"),
    ({"reason": "Ticket 881 needs it", "minutes": 30, "scope": "all"}, "validation_failed"),
])
async def test_bad_grants_are_refused_and_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        body: dict[str, object], code: str) -> None:
    _, secret = await operator_key(rt, clock)
    ops = {"Authorization": f"Bearer {secret}"}
    response = await client.post(f"/v1/operator/accounts/{acme.id}/break-glass",
                                 headers=ops, json=body)
    assert_problem(response, 400, code)
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    assert (await client.get("/v1/account/break-glass", headers=owner)).json() == []


async def test_a_grant_on_an_unknown_account_makes_no_keys(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    _, secret = await operator_key(rt, clock)
    ops = {"Authorization": f"Bearer {secret}"}
    async with rt.vault.keystore.connect() as conn:
        before = await conn.scalar(select(func.count()).select_from(tenant_keys_table))
    for account in ("acc_" + "0" * 26, "acc_nope", "x" * 300):
        response = await client.post(f"/v1/operator/accounts/{account}/break-glass",
                                     headers=ops, json={"reason": "Ticket 881 needs it",
                                                        "minutes": 5})
        assert_problem(response, 404, "account_not_found")
    async with rt.vault.keystore.connect() as conn:
        after = await conn.scalar(select(func.count()).select_from(tenant_keys_table))
    assert after == before
