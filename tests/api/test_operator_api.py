"""The operator API: connectors and routes, behind operator keys only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, assert_problem, settle
from tidings.core.clock import FakeClock
from tidings.operators.service import do_create_operator_key, do_revoke_operator_key
from tidings.routing.models import ConnectorConfig, RouteRule
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

SMPP = {"kind": "smpp", "name": "smsc-a", "host": "127.0.0.1", "port": 2775,
        "system_id": "tidings", "password": "s3cr3t!", "binds": 2, "window": 50, "tps": 500}


async def operator_key(rt: Runtime, clock: FakeClock) -> tuple[str, str]:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        made = await do_create_operator_key(session, name="ops", now=clock.now())
    return made.key.id, made.secret


@pytest.fixture
async def ops(rt: Runtime, clock: FakeClock) -> dict[str, str]:
    _, secret = await operator_key(rt, clock)
    return {"Authorization": f"Bearer {secret}"}


async def counts(rt: Runtime) -> tuple[int, int]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        connectors = await session.scalar(select(func.count()).select_from(ConnectorConfig))
        routes = await session.scalar(select(func.count()).select_from(RouteRule))
    return int(connectors or 0), int(routes or 0)


async def test_add_an_smpp_connector_whose_password_is_never_shown_or_stored_in_clear(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str]) -> None:
    response = await client.post("/v1/operator/connectors", json=SMPP, headers=ops)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "smsc-a"
    assert body["kind"] == "smpp"
    assert body["channels"] == ["sms"]
    assert body["settings"]["window"] == 50
    assert body["secrets"] == ["password"]
    assert "s3cr3t!" not in response.text
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await session.scalar(select(ConnectorConfig))
    assert row is not None
    assert b"s3cr3t!" not in row.secrets_enc
    assert "s3cr3t!" not in str(row.settings)
    listed = await client.get("/v1/operator/connectors", headers=ops)
    assert [c["name"] for c in listed.json()] == ["smsc-a"]
    shown = await client.get("/v1/operator/connectors/smsc-a", headers=ops)
    assert shown.json()["id"] == body["id"]


@pytest.mark.parametrize(("change", "code"), [
    ({"port": 0}, "validation_failed"),
    ({"port": "many"}, "validation_failed"),
    ({"name": "Has Spaces"}, "validation_failed"),
    ({"system_id": "x" * 16}, "validation_failed"),
    ({"password": "123456789"}, "validation_failed"),  # SMPP 3.4: 8 characters at most
    ({"password": "caf\u00e9"}, "validation_failed"),
    ({"binds": 0}, "validation_failed"),
    ({"window": 100_000}, "validation_failed"),
    ({"tps": -1}, "validation_failed"),
    ({"kind": "carrier-pigeon"}, "validation_failed"),
    ({"long_messages": "smoke"}, "validation_failed"),
    ({"surprise": True}, "validation_failed"),
    ({"channels": ["fax"]}, "validation_failed"),
])
async def test_bad_connectors_are_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str],
        change: dict[str, Any], code: str) -> None:
    response = await client.post("/v1/operator/connectors", json={**SMPP, **change},
                                 headers=ops)
    assert_problem(response, 400, code)
    assert await counts(rt) == (0, 0)


async def test_malformed_json_and_duplicate_names(client: httpx.AsyncClient, rt: Runtime,
                                                  ops: dict[str, str]) -> None:
    broken = await client.post("/v1/operator/connectors", content=b'{"kind": "smpp",',
                               headers={**ops, "content-type": "application/json"})
    assert_problem(broken, 400, "malformed_json")
    assert (await client.post("/v1/operator/connectors", json=SMPP, headers=ops)
            ).status_code == 201
    again = await client.post("/v1/operator/connectors", json=SMPP, headers=ops)
    assert_problem(again, 409, "connector_exists")
    assert await counts(rt) == (1, 0)


async def test_routes_name_existing_connectors_of_their_channel(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str], acme: Tenant) -> None:
    await client.post("/v1/operator/connectors", json=SMPP, headers=ops)
    await client.post("/v1/operator/connectors", json={**SMPP, "name": "smsc-b"}, headers=ops)
    route = {"channel": "sms", "prefix": "+44", "account_id": acme.id,
             "connectors": [{"connector": "smsc-a", "weight": 70},
                            {"connector": "smsc-b", "weight": 30}]}
    made = await client.post("/v1/operator/routes", json=route, headers=ops)
    assert made.status_code == 201, made.text
    assert made.json()["connectors"][1] == {"connector": "smsc-b", "weight": 30}
    listed = await client.get("/v1/operator/routes", headers=ops)
    assert [r["id"] for r in listed.json()] == [made.json()["id"]]
    in_use = await client.delete("/v1/operator/connectors/smsc-a", headers=ops)
    assert_problem(in_use, 409, "connector_in_use")
    assert (await client.delete(f"/v1/operator/routes/{made.json()['id']}", headers=ops)
            ).status_code == 204
    assert (await client.delete("/v1/operator/connectors/smsc-a", headers=ops)
            ).status_code == 204
    assert await counts(rt) == (1, 0)


async def test_the_sandbox_is_a_connector_routes_name_and_a_partial_table_says_so(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, ops: dict[str, str],
        acme: Tenant) -> None:
    await client.post("/v1/operator/connectors", json=SMPP, headers=ops)
    uk = await client.post("/v1/operator/routes", headers=ops, json={
        "channel": "sms", "prefix": "+44", "connectors": [{"connector": "smsc-a"}]})
    assert uk.status_code == 201, uk.text
    assert "no_route" in uk.json()["warning"]
    rest = await client.post("/v1/operator/routes", headers=ops, json={
        "channel": "sms", "connectors": [{"connector": "sandbox"}]})
    assert rest.status_code == 201, rest.text
    assert rest.json()["warning"] is None
    assert rest.json()["connectors"] == [{"connector": "sandbox", "weight": 1}]

    sent = await client.post("/v1/messages", headers=acme.headers, json={
        "to": "+12025550173", "from": "Acme", "body": "Hi", "channel": "sms"})
    assert sent.status_code == 201, sent.text
    await settle(rt, clock, seconds=6)
    shown = (await client.get(f"/v1/messages/{sent.json()['id']}",
                              headers=acme.headers)).json()
    assert shown["status"] == "delivered", shown
    # The sandbox carries only SMS, and its name is taken.
    assert_problem(await client.post("/v1/operator/routes", headers=ops, json={
        "channel": "email", "connectors": [{"connector": "sandbox"}]}), 400,
        "connector_channel_mismatch")
    assert_problem(await client.post("/v1/operator/connectors", headers=ops,
                                     json={**SMPP, "name": "sandbox"}), 409, "connector_exists")
    assert await counts(rt) == (1, 2)


@pytest.mark.parametrize(("route", "status", "code"), [
    ({"channel": "sms", "connectors": [{"connector": "nope"}]}, 400, "unknown_connector"),
    ({"channel": "whatsapp", "connectors": [{"connector": "smsc-a"}]}, 400,
     "connector_channel_mismatch"),
    ({"channel": "sms", "connectors": []}, 400, "validation_failed"),
    ({"channel": "sms", "connectors": [{"connector": "smsc-a"}, {"connector": "smsc-a"}]},
     400, "validation_failed"),
    ({"channel": "sms", "prefix": "44", "connectors": [{"connector": "smsc-a"}]}, 400,
     "validation_failed"),
    ({"channel": "sms", "country": "gb", "connectors": [{"connector": "smsc-a"}]}, 400,
     "validation_failed"),
    ({"channel": "sms", "account_id": "acc_" + "0" * 26,
      "connectors": [{"connector": "smsc-a"}]}, 400, "unknown_account"),
    ({"channel": "sms", "connectors": [{"connector": "smsc-a", "weight": -1}]}, 400,
     "validation_failed"),
    ({"channel": "pager", "connectors": [{"connector": "smsc-a"}]}, 400, "validation_failed"),
])
async def test_bad_routes_are_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str],
        route: dict[str, Any], status: int, code: str) -> None:
    await client.post("/v1/operator/connectors", json=SMPP, headers=ops)
    assert_problem(await client.post("/v1/operator/routes", json=route, headers=ops),
                   status, code)
    assert await counts(rt) == (1, 0)


async def test_unknown_ids_are_404(client: httpx.AsyncClient, ops: dict[str, str]) -> None:
    assert_problem(await client.get("/v1/operator/connectors/nope", headers=ops), 404,
                   "connector_not_found")
    assert_problem(await client.delete("/v1/operator/routes/rte_nope", headers=ops), 404,
                   "route_not_found")


async def test_only_operator_keys_open_the_operator_api(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    assert_problem(await client.get("/v1/operator/connectors"), 401, "missing_api_key")
    assert_problem(await client.get("/v1/operator/connectors", headers=acme.headers), 401,
                   "invalid_operator_key")
    forged = "tdo_0123456789ab_" + "A" * 43
    assert_problem(await client.get("/v1/operator/connectors",
                                    headers={"Authorization": f"Bearer {forged}"}),
                   401, "invalid_operator_key")
    key_id, secret = await operator_key(rt, clock)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_revoke_operator_key(session, key_id=key_id, now=clock.now())
    assert_problem(await client.post("/v1/operator/connectors", json=SMPP,
                                     headers={"Authorization": f"Bearer {secret}"}),
                   401, "operator_key_revoked")
    assert await counts(rt) == (0, 0)


@pytest.mark.parametrize(("body", "secrets"), [
    ({"kind": "smtp", "name": "mail", "host": "smtp.example.net", "username": "u",
      "password": "hunter2hunter2", "mail_domain": "mail.acme.example"}, ["password"]),
    ({"kind": "whatsapp", "name": "wa", "phone_number_id": "106540352242922",
      "access_token": "EAAtoken123", "app_secret": "appsecret42", "verify_token": "verify42"},
     ["access_token", "app_secret", "verify_token"]),
])
async def test_email_and_whatsapp_connectors_keep_their_secrets_encrypted(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str], body: dict[str, Any],
        secrets: list[str]) -> None:
    response = await client.post("/v1/operator/connectors", json=body, headers=ops)
    assert response.status_code == 201, response.text
    assert response.json()["secrets"] == secrets
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await session.scalar(select(ConnectorConfig))
    assert row is not None
    for name in secrets:
        assert body[name] not in response.text
        assert body[name].encode() not in row.secrets_enc
        assert body[name] not in str(row.settings)


@pytest.mark.parametrize("body", [
    {"kind": "smtp", "name": "mail", "host": "smtp.example.net"},  # no mail_domain
    {"kind": "smtp", "name": "mail", "host": "smtp example", "mail_domain": "m.example"},
    {"kind": "smtp", "name": "mail", "host": "h.example", "mail_domain": "m.example",
     "security": "ssl3"},
    {"kind": "whatsapp", "name": "wa", "phone_number_id": "12ab", "access_token": "t",
     "app_secret": "s", "verify_token": "v"},
    {"kind": "whatsapp", "name": "wa", "phone_number_id": "1", "access_token": "t",
     "app_secret": "s", "verify_token": "v", "api_version": "latest"},
])
async def test_bad_email_and_whatsapp_connectors_are_refused(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str],
        body: dict[str, Any]) -> None:
    assert_problem(await client.post("/v1/operator/connectors", json=body, headers=ops),
                   400, "validation_failed")
    assert await counts(rt) == (0, 0)
