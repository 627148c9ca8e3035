"""Query parameters of every list: an unknown or repeated one is a 400 naming it, never
an answer that silently ignores it; the known ones filter; garbage in them is a 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_operator_api import operator_key
from tests.conftest import Tenant, assert_problem, make_tenant, settle
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

# (path, whose key lists it)
LISTS = [
    ("/v1/messages", "tenant"),
    ("/v1/webhook-deliveries", "tenant"),
    ("/v1/numbers", "tenant"),
    ("/v1/accounts", "tenant"),
    ("/v1/keys", "tenant"),
    ("/v1/verified-numbers", "tenant"),
    ("/v1/privacy/requests", "tenant"),
    ("/v1/privacy/holds", "tenant"),
    ("/v1/privacy/restrictions", "tenant"),
    ("/v1/operator/connectors", "operator"),
    ("/v1/operator/routes", "operator"),
    ("/v1/operator/verifications", "operator"),
    ("/v1/operator/breaches", "operator"),
    ("/v1/policies", "tenant"),
    ("/v1/operator/policies", "operator"),
    ("/v1/operator/stats/traffic", "operator"),
    ("/v1/consents", "tenant"),
]
# Lists that take one of the names tried as unknown below (their days' ``from``, an
# account's answer to a policy version, ``state``).
OWN_PARAMETERS = {"/v1/operator/stats/traffic": {"from"}, "/v1/policies": {"state"}}
# Lists of one thing that must be named: a person's consents.
NAMING = {"/v1/consents": {"number": "+12025550173"}}


@pytest.fixture
async def keys(rt: Runtime, clock: FakeClock, acme: Tenant) -> dict[str, dict[str, str]]:
    _, secret = await operator_key(rt, clock)
    return {"tenant": acme.headers, "operator": {"Authorization": f"Bearer {secret}"}}


@pytest.mark.parametrize(("path", "who", "unknown"), [
    (path, who, unknown) for path, who in LISTS
    for unknown in ("from", "state", "Status", "limit[]")
    if unknown not in OWN_PARAMETERS.get(path, set())])
async def test_an_unknown_parameter_is_a_400_naming_it(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]], path: str, who: str,
        unknown: str) -> None:
    response = await client.get(path, headers=keys[who], params={unknown: "x"})
    assert_problem(response, 400, "unknown_query_parameter")
    assert response.json()["parameter"] == unknown
    assert repr(unknown) in response.json()["detail"]


@pytest.mark.parametrize(("path", "who"), LISTS)
async def test_without_parameters_every_list_answers(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]], path: str,
        who: str) -> None:
    response = await client.get(path, headers=keys[who], params=NAMING.get(path))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/messages", [("status", "queued"), ("status", "failed")]),
    ("/v1/messages", [("limit", "1"), ("limit", "1000")]),
    ("/v1/webhook-deliveries", [("status", "pending"), ("status", "failed")]),
])
async def test_a_parameter_given_twice_is_a_400(client: httpx.AsyncClient, acme: Tenant,
                                                path: str, params: list[tuple[str, str]]) -> None:
    response = await client.get(path, headers=acme.headers, params=params)
    assert_problem(response, 400, "repeated_query_parameter")
    assert response.json()["parameter"] == params[0][0]


async def test_an_unknown_parameter_beside_known_ones_is_still_refused(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    response = await client.get("/v1/messages", headers=acme.headers,
                                params={"status": "queued", "from": "Acme"})
    assert_problem(response, 400, "unknown_query_parameter")
    assert response.json()["parameter"] == "from"


async def _send(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"to": "+12025550173", "from": "Acme", "body": "Hello", **fields}
    response = await client.post("/v1/messages", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_known_message_filters_still_filter(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sms = await _send(client, acme)
    email = await _send(client, acme, channel="email", to="bob@example.com",
                        **{"from": "acme@example.com"}, subject="Hi")
    await settle(rt, clock)

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/messages", headers=acme.headers, params=params)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["data"]]

    assert await ids(channel="sms") == [sms["id"]]
    assert await ids(channel="email", direction="outbound") == [email["id"]]
    assert await ids(direction="inbound") == []
    assert await ids(to="+12025550173", limit="5") == [sms["id"]]


async def test_known_delivery_filters_still_filter(
        client: httpx.AsyncClient, rt: Runtime) -> None:
    hooked = await make_tenant(rt, "Hooked", webhook_url="http://127.0.0.1:9/hook")
    sent = await _send(client, hooked)
    listed = await client.get("/v1/webhook-deliveries", headers=hooked.headers,
                              params={"message_id": sent["id"], "status": "pending"})
    assert listed.status_code == 200, listed.text
    assert {d["message_id"] for d in listed.json()["data"]} == {sent["id"]}
    other = await client.get("/v1/webhook-deliveries", headers=hooked.headers,
                             params={"message_id": "msg_" + "0" * 26})
    assert other.json()["data"] == []


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/messages", {"channel": "fax"}),
    ("/v1/messages", {"channel": "SMS"}),
    ("/v1/messages", {"status": ""}),
    ("/v1/messages", {"direction": "inbound,outbound"}),
    ("/v1/webhook-deliveries", {"message_id": "whatever"}),
    ("/v1/webhook-deliveries", {"message_id": "msg_' OR 1=1 --"}),
    ("/v1/webhook-deliveries", {"status": "done"}),
])
async def test_garbage_in_a_known_filter_is_a_400(client: httpx.AsyncClient, acme: Tenant,
                                                  path: str, params: dict[str, str]) -> None:
    response = await client.get(path, headers=acme.headers, params=params)
    assert_problem(response, 400, "validation_failed")
    assert [e["loc"] for e in response.json()["errors"]] == [["query", *params]]

