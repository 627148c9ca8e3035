"""Least privilege in practice: what a role sees of a message, keys that expire or work
only from some networks, and the audit events an owner reads and filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.users.people import person, session_headers
from tidings.core.clock import FakeClock
from tidings.messaging.views import mask_address
from tidings.runtime import Runtime

from .test_accounts import assert_problem

NUMBER = "+12025550173"


async def sent_message(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.post("/v1/messages", headers=tenant.headers,
                                 json={"to": NUMBER, "from": "Acme", "body": "Your code is 4711"})
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize(("role", "full"), [("developer", True), ("admin", True),
                                            ("support", False), ("compliance", False)])
async def test_numbers_are_masked_and_bodies_left_out_without_read_content(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str, full: bool) -> None:
    sent = await sent_message(client, acme)
    headers = await session_headers(rt, await person(rt, acme.id, role))
    read = (await client.get(f"/v1/messages/{sent['id']}", headers=headers)).json()
    [listed] = (await client.get("/v1/messages", headers=headers)).json()["data"]
    for seen in (read, listed):
        if full:
            assert (seen["to"], seen["body"]) == (NUMBER, "Your code is 4711")
        else:
            assert (seen["to"], seen["body"]) == ("+1202555****", None)
            assert "4711" not in str(seen)


@pytest.mark.parametrize(("address", "masked"), [
    ("+12025550173", "+1202555****"), ("ann@example.com", "a**@example.com"),
    ("Acme", "Ac**"), ("", ""), ("x", "x"), ("@example.com", "@e**********"),
])
def test_addresses_are_masked_whatever_their_kind(address: str, masked: str) -> None:
    assert mask_address(address) == masked


async def test_a_key_stops_working_when_it_expires(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    made = await client.post("/v1/keys", headers=acme.headers,
                             json={"name": "an hour", "expires_at": expires})
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"] is not None
    temporary = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await client.get("/v1/account", headers=temporary)).status_code == 200
    clock.advance(3600)
    assert_problem(await client.get("/v1/account", headers=temporary), 401, "api_key_expired")


async def test_a_key_works_only_from_its_networks(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    # The test client calls from 127.0.0.1.
    elsewhere = await client.post("/v1/keys", headers=acme.headers, json={
        "name": "office", "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]})
    here = await client.post("/v1/keys", headers=acme.headers, json={
        "name": "local", "allowed_ips": ["127.0.0.0/8"]})
    assert elsewhere.json()["allowed_ips"] == ["203.0.113.0/24", "2001:db8::/32"]
    office = {"Authorization": f"Bearer {elsewhere.json()['key']}"}
    local = {"Authorization": f"Bearer {here.json()['key']}"}
    assert_problem(await client.get("/v1/account", headers=office), 403, "ip_not_allowed")
    send = await client.post("/v1/messages", headers=office,
                             json={"to": NUMBER, "from": "Acme", "body": "hi"})
    assert_problem(send, 403, "ip_not_allowed")  # the fast send path too
    assert (await client.get("/v1/account", headers=local)).status_code == 200


async def test_a_key_cannot_be_wider_than_its_creator(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    developer = await session_headers(rt, await person(rt, acme.id, "developer"))
    wide = await client.post("/v1/keys", headers=developer,
                             json={"name": "wide", "scopes": ["users:manage"]})
    assert_problem(wide, 400, "scope_too_wide")
    default = await client.post("/v1/keys", headers=developer, json={"name": "mine"})
    assert default.status_code == 201, default.text
    assert "users:manage" not in default.json()["scopes"]
    assert "messages:send" in default.json()["scopes"]
    assert default.json()["created_by"].startswith("user:usr_")


async def test_the_owner_reads_and_filters_the_audit_events(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    for name in ("one", "two", "three"):
        await client.post("/v1/keys", headers=acme.headers, json={"name": name})
    await client.post("/v1/keys", headers=globex.headers, json={"name": "theirs"})
    page = await client.get("/v1/audit-events", headers=owner,
                            params={"actor": f"api_key:{acme.made.api_key_id}", "limit": 2})
    assert page.status_code == 200, page.text
    first = page.json()
    assert [e["table"] for e in first["data"]] == ["api_keys", "api_keys"]
    rest = await client.get("/v1/audit-events", headers=owner, params={
        "actor": f"api_key:{acme.made.api_key_id}", "cursor": first["next_cursor"]})
    ids = [e["id"] for e in first["data"] + rest.json()["data"]]
    assert len(ids) == len(set(ids)) == 3
    assert ids == sorted(ids, reverse=True)
    assert rest.json()["next_cursor"] is None
    none = await client.get("/v1/audit-events", headers=owner,
                            params={"since": "2100-01-01T00:00:00Z"})
    assert none.json()["data"] == []


@pytest.mark.parametrize("params", [{"cursor": "abc"}, {"cursor": "-1"}, {"limit": "0"},
                                    {"limit": "501"}, {"since": "yesterday"},
                                    {"since": "2026-01-01T00:00:00"}, {"actr": "x"},
                                    {"action": "x" * 41}])
async def test_bad_audit_queries_are_a_400(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, params: dict[str, str]) -> None:
    response = await client.get("/v1/audit-events", headers=acme.headers, params=params)
    assert response.status_code == 400, response.text


async def test_a_user_of_one_account_cannot_act_on_another(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    for call in (client.get("/v1/messages", headers={**owner, "Tidings-Account": globex.id}),
                 client.post("/v1/users", headers={**owner, "Tidings-Account": globex.id},
                             json={"email": "mole@example.com", "role": "owner"})):
        assert_problem(await call, 404, "account_not_found")
    theirs = await sent_message(client, globex)
    assert_problem(await client.get(f"/v1/messages/{theirs['id']}", headers=owner), 404,
                   "message_not_found")
