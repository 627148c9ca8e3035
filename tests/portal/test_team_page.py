"""The team page: inviting a user who then logs in, changing roles and disabling, and
never beyond one's own permissions."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Tenant
from tests.portal.pages import field_error, form_token, signed_in
from tests.users.people import person
from tidings.runtime import Runtime


async def test_an_invited_user_logs_in_with_the_temporary_password(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    invited = await client.post("/portal/team", data={
        "_csrf": token, "email": "bo@example.com", "role": "support"})
    assert invited.status_code == 200
    password = re.search(r'<code id="temporary-password">([^<]+)</code>', invited.text)
    assert password
    assert "bo@example.com" in invited.text
    browser = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with browser:
        login = await browser.get("/portal/login")
        done = await browser.post("/portal/login", data={
            "_csrf": form_token(login), "email": "bo@example.com",
            "password": password.group(1)})
        assert done.status_code == 303
        assert (await browser.get("/portal/messages")).headers["location"] == \
            "/portal/password"


async def test_roles_change_and_users_are_disabled_within_ones_own_rights(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    admin = await person(rt, acme.id, "admin")
    token = await signed_in(client, rt, admin)
    analyst = await person(rt, acme.id, "analyst")
    owner = await person(rt, acme.id, "owner")
    changed = await client.post(f"/portal/team/{analyst.user_id}", data={
        "_csrf": token, "action": "role", "role": "support"})
    assert changed.status_code == 303
    disabled = await client.post(f"/portal/team/{analyst.user_id}", data={
        "_csrf": token, "action": "disable"})
    assert disabled.status_code == 303
    users = {u["email"]: u for u in (await client.get(
        "/v1/users", headers=acme.headers)).json()}
    assert (users[analyst.email]["role"], users[analyst.email]["status"]) == (
        "support", "disabled")
    too_wide = await client.post(f"/portal/team/{owner.user_id}", data={
        "_csrf": token, "action": "disable"})
    assert too_wide.status_code == 400
    assert "permissions you do not have" in too_wide.text
    own = await client.post(f"/portal/team/{admin.user_id}", data={
        "_csrf": token, "action": "role", "role": "support"})
    assert own.status_code == 400
    for data in ({"action": "role", "role": "emperor"}, {"action": "explode"}, {}):
        bad = await client.post(f"/portal/team/{analyst.user_id}",
                                data={"_csrf": token, **data})
        assert bad.status_code == 400, data
    bad_invite = await client.post("/portal/team", data={"_csrf": token, "email": "",
                                                         "role": "nobody"})
    assert field_error(bad_invite, "email")
    assert field_error(bad_invite, "role") is None
    assert "Choose one of the listed roles." in bad_invite.text
    after = {u["email"]: u for u in (await client.get(
        "/v1/users", headers=acme.headers)).json()}
    assert after[owner.email]["status"] == "active"
    assert after[admin.email]["role"] == "admin"
    assert len(after) == len(users)
