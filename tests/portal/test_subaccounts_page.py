"""The sub-accounts page: creating one, its rights within the parent's, suspending it
with a reason and lifting that; garbage changes nothing."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Tenant
from tests.portal.pages import field_error, signed_in
from tests.users.people import person
from tidings.runtime import Runtime

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


async def test_a_sub_account_is_made_limited_suspended_and_resumed(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "admin"))
    made = await client.post("/portal/subaccounts", data={"_csrf": token, "name": "Acme EU"})
    assert made.status_code == 200
    key = re.search(r'<code id="new-key">(tdk_[^<]+)</code>', made.text)
    assert key
    child_key = {"Authorization": f"Bearer {key.group(1)}"}
    child_id = (await client.get("/v1/account", headers=child_key)).json()["id"]
    saved = await client.post(f"/portal/subaccounts/{child_id}", data={
        "_csrf": token, "channels": ["email"], "sender_ids": "Acme\nAcmeEU",
        "monthly_message_cap": "100", "may_create_subaccounts": "no"})
    assert saved.status_code == 200
    assert "Saved." in saved.text
    rights = (await client.get(f"/v1/accounts/{child_id}/rights", headers=acme.headers)).json()
    assert rights["channels"] == ["email"]
    assert rights["monthly_message_cap"] == 100
    assert rights["may_create_subaccounts"] is False
    refused = await client.post("/v1/messages", headers=child_key, json=SEND)
    assert refused.status_code == 403  # sms is not among its channels
    no_reason = await client.post(f"/portal/subaccounts/{child_id}/status",
                                  data={"_csrf": token, "action": "suspend"})
    assert no_reason.status_code == 400
    assert field_error(no_reason, f"reason-{child_id}")
    suspended = await client.post(f"/portal/subaccounts/{child_id}/status", data={
        "_csrf": token, "action": "suspend", "reason": "Paused for review"})
    assert suspended.status_code == 303
    page = await client.get("/portal/subaccounts")
    assert "Lift the suspension" in page.text
    resumed = await client.post(f"/portal/subaccounts/{child_id}/status", data={
        "_csrf": token, "action": "resume"})
    assert resumed.status_code == 303
    assert (await client.get("/v1/account", headers=child_key)).json()["status"] == "active"


async def test_garbage_rights_and_foreign_accounts_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    made = await client.post("/portal/subaccounts", data={"_csrf": token, "name": "Child"})
    child_id = re.search(r"Created Child <code>(acc_[0-9a-z]+)</code>", made.text)
    assert child_id
    before = (await client.get(f"/v1/accounts/{child_id.group(1)}/rights",
                               headers=acme.headers)).json()
    for data, field in (({"monthly_message_cap": "-5"}, "monthly_message_cap"),
                        ({"monthly_message_cap": "ten"}, "monthly_message_cap"),
                        ({"requests_per_second": "0"}, "requests_per_second"),
                        ({"channels": ["pigeon"]}, "channels"),
                        ({"sender_ids": "x" * 300}, "sender_ids")):
        bad = await client.post(f"/portal/subaccounts/{child_id.group(1)}",
                                data={"_csrf": token, **data})
        assert bad.status_code == 400, data
        assert field_error(bad, field) or 'role="alert"' in bad.text, data
    after = (await client.get(f"/v1/accounts/{child_id.group(1)}/rights",
                              headers=acme.headers)).json()
    assert after == before
    foreign = await client.get(f"/portal/subaccounts/{globex.id}")
    assert foreign.status_code == 404
    for name in ("", "n" * 201):
        empty = await client.post("/portal/subaccounts", data={"_csrf": token, "name": name})
        assert empty.status_code == 400
        assert field_error(empty, "name")
