"""The audit page: the account's events filtered, and the chain verified from a button."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant
from tests.portal.pages import signed_in
from tests.users.people import person
from tidings.runtime import Runtime


async def test_events_are_listed_filtered_and_the_chain_verified(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    compliance = await person(rt, acme.id, "compliance")
    token = await signed_in(client, rt, compliance)
    await client.post("/v1/keys", headers=globex.headers, json={"name": "elsewhere"})
    page = await client.get("/portal/audit")
    assert page.status_code == 200
    assert "user.create" in page.text
    assert globex.id not in page.text
    only = await client.get("/portal/audit", params={"action": "api_key.create"})
    assert "user.create" not in only.text
    for params in ({"action": "DROP TABLE"}, {"from": "yesterday"}, {"cursor": "abc"},
                   {"actor": "x" * 500}):
        bad = await client.get("/portal/audit", params=params)
        assert bad.status_code == 400, params
    checked = await client.post("/portal/audit/verify", data={"_csrf": token})
    assert checked.status_code == 200
    assert 'id="chain-check"' in checked.text
    assert "The chain is intact" in checked.text


async def test_aud_1_each_event_shows_the_request_that_made_it(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await signed_in(client, rt, await person(rt, acme.id, "compliance"))
    renamed = await client.patch("/v1/account", json={"name": "Acme Renamed"},
                                 headers={**acme.headers, "X-Request-Id": "rename-1234"})
    assert renamed.status_code == 200, renamed.text
    page = await client.get("/portal/audit", params={"action": "update"})
    assert page.status_code == 200
    assert "<code>rename-1234</code>" in page.text
