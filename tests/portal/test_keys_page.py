"""The API keys page: a key made here is shown once and works; scopes never exceed the
person's own; revoking stops it; garbage changes nothing."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select

from tests.conftest import Tenant
from tests.portal.pages import field_error, page_error, signed_in
from tests.users.people import person
from tidings.accounts.models import ApiKey
from tidings.runtime import Runtime


async def key_count(rt: Runtime, tenant: str) -> int:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(ApiKey).where(
            ApiKey.tenant_id == tenant)) or 0)


async def test_a_key_made_on_the_page_is_shown_once_and_works_within_its_scopes(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    made = await client.post("/portal/keys", data={"_csrf": token, "name": "reporting",
                                                   "scopes": ["messages:read"]})
    assert made.status_code == 200
    key = re.search(r'<code id="new-key">(tdk_[^<]+)</code>', made.text)
    assert key, made.text[:500]
    bearer = {"Authorization": f"Bearer {key.group(1)}"}
    assert (await client.get("/v1/messages", headers=bearer)).status_code == 200
    assert (await client.post("/v1/messages", headers=bearer, json={
        "to": "+12025550173", "from": "Acme", "body": "x"})).status_code == 403
    listed = await client.get("/portal/keys")
    assert key.group(1) not in listed.text
    assert "reporting" in listed.text


async def test_scopes_beyond_ones_own_and_bad_names_are_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    before = await key_count(rt, acme.id)
    wider = await client.post("/portal/keys", data={"_csrf": token, "name": "x",
                                                    "scopes": ["users:manage"]})
    assert wider.status_code == 400
    assert field_error(wider, "scopes") or "users:manage" in wider.text
    for name in ("", "n" * 201, "bad\x00name"):
        bad = await client.post("/portal/keys", data={"_csrf": token, "name": name})
        assert bad.status_code == 400, name
        assert field_error(bad, "name"), name
    nonsense = await client.post("/portal/keys", data={"_csrf": token, "name": "y",
                                                       "scopes": ["nothing:at_all"]})
    assert nonsense.status_code == 400
    assert await key_count(rt, acme.id) == before


async def test_revoking_a_key_stops_it(client: httpx.AsyncClient, rt: Runtime,
                                       acme: Tenant, globex: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    made = await client.post("/portal/keys", data={"_csrf": token, "name": "temp"})
    secret = re.search(r'<code id="new-key">(tdk_[^<]+)</code>', made.text)
    assert secret
    listed = await client.get("/v1/keys", headers=acme.headers)
    key_id = next(k["id"] for k in listed.json() if k["name"] == "temp")
    revoked = await client.post(f"/portal/keys/{key_id}/revoke", data={"_csrf": token})
    assert revoked.status_code == 303
    answer = await client.get("/v1/messages",
                              headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert answer.status_code == 401
    other = (await client.get("/v1/keys", headers=globex.headers)).json()[0]["id"]
    foreign = await client.post(f"/portal/keys/{other}/revoke", data={"_csrf": token})
    assert foreign.status_code == 404
    assert page_error(foreign)
    assert (await client.get("/v1/account", headers=globex.headers)).status_code == 200
