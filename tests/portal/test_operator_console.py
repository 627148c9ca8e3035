"""The operator's console: staff only, with a second factor; the platform at a glance,
accounts verified, suspended and terminated with reasons, connectors and routes."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, settle
from tests.portal.pages import field_error, page_error, signed_in
from tests.signup.conftest import DETAILS, logged_in, mailbox, signup_body, token_in
from tests.users.people import Person, person
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.runtime import Runtime

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"signup": "open"})


async def staff(rt: Runtime) -> Person:
    return await person(rt, None, "operator", email="ops@tidings.example")


async def test_only_staff_with_a_second_factor_see_the_console(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    assert (await client.get("/operator")).status_code == 303
    await signed_in(client, rt, await person(rt, acme.id, "owner"))
    refused = await client.get("/operator/accounts")
    assert refused.status_code == 403
    assert page_error(refused) == "not_operator_staff"
    client.cookies.clear()
    await signed_in(client, rt, await staff(rt))
    landing = await client.get("/portal")
    assert landing.headers["location"] == "/operator"
    assert (await client.get("/operator")).status_code == 200
    bare = await person(rt, None, "operator", email="new@tidings.example", mfa=False)
    client.cookies.clear()
    await signed_in(client, rt, bare)
    gated = await client.get("/operator/connectors")
    assert gated.status_code == 303
    assert gated.headers["location"] == "/portal/mfa"


async def test_the_platform_page_counts_messages_and_backlogs(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    for _ in range(3):
        await client.post("/v1/messages", headers=acme.headers, json=SEND)
    await signed_in(client, rt, await staff(rt))
    before = await client.get("/operator")
    assert 'data-stat="per-minute">0.1<' in before.text  # 3 in the last hour
    assert 'data-queue="message.dispatch">3<' in before.text
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    after = await client.get("/operator")
    assert "<td>sandbox</td><td class=\"num\">3</td>" in after.text  # all in the last minute
    assert "sandbox" in after.text
    assert "100.0 %" in after.text


async def test_staff_verify_an_account_and_suspend_and_terminate_with_reasons(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await client.post("/v1/signup", json=signup_body())
    await client.post("/v1/signup/confirm",
                      json={"token": token_in((await mailbox(rt, clock))[0])})
    owner = await logged_in(client, clock, "founder@nimbus.example")
    account_id = (await client.get("/v1/account", headers=owner)).json()["id"]
    await client.put("/v1/account/verification", headers=owner, json=DETAILS)
    token = await signed_in(client, rt, await staff(rt))
    page = await client.get("/operator/accounts")
    assert f'id="verify-{account_id}"' in page.text
    assert DETAILS["registration_number"] in page.text
    no_reason = await client.post(f"/operator/accounts/{account_id}",
                                  data={"_csrf": token, "decision": "reject"})
    assert no_reason.status_code == 400
    assert field_error(no_reason, f"reason-{account_id}") == "Reason: this field is required."
    verified = await client.post(f"/operator/accounts/{account_id}",
                                 data={"_csrf": token, "decision": "trial"})
    assert verified.status_code == 303
    assert (await client.get("/v1/account", headers=owner)).json()["status"] == "trial"
    suspended = await client.post(f"/operator/accounts/{acme.id}", data={
        "_csrf": token, "decision": "suspended", "reason": "Unpaid invoice"})
    assert suspended.status_code == 303
    assert (await client.post("/v1/messages", headers=acme.headers, json=SEND)).status_code \
        == 403
    for data in ({"decision": "explode"}, {"decision": "terminated"},
                 {"decision": "suspended", "reason": "x" * 501}):
        bad = await client.post(f"/operator/accounts/{acme.id}", data={"_csrf": token, **data})
        assert bad.status_code == 400, data
    gone = await client.post(f"/operator/accounts/{acme.id}", data={
        "_csrf": token, "decision": "terminated", "reason": "Closed at the client's request"})
    assert gone.status_code == 303
    again = await client.post(f"/operator/accounts/{acme.id}", data={
        "_csrf": token, "decision": "reactivate"})
    assert again.status_code == 400
    assert "terminated account" in again.text


async def test_connectors_and_routes_are_listed(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str]) -> None:  # noqa: F811
    made = await client.post("/v1/operator/connectors", headers=ops, json={
        "kind": "smpp", "name": "smsc-a", "host": "127.0.0.1", "port": 9,
        "system_id": "tidings", "password": "s3cr3t!", "binds": 1, "window": 10})
    assert made.status_code == 201, made.text
    await signed_in(client, rt, await staff(rt))
    page = await client.get("/operator/connectors")
    assert page.status_code == 200
    assert 'id="connector-smsc-a"' in page.text
    assert "s3cr3t!" not in page.text
