"""The operator's accounts: the list, and suspending, reactivating, terminating with a
reason through the API (the CLI and the console share the function)."""

from __future__ import annotations

import httpx

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, assert_problem

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


async def test_the_operator_lists_accounts_and_suspends_one(
        client: httpx.AsyncClient, acme: Tenant, globex: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    listed = await client.get("/v1/operator/accounts", headers=ops)
    assert listed.status_code == 200, listed.text
    assert {acme.id, globex.id} <= {a["id"] for a in listed.json()}
    suspended = await client.post(f"/v1/operator/accounts/{acme.id}/status", headers=ops,
                                  json={"status": "suspended", "reason": "Unpaid invoice"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    refused = await client.post("/v1/messages", headers=acme.headers, json=SEND)
    assert refused.status_code == 403
    assert (await client.post("/v1/messages", headers=globex.headers,
                              json=SEND)).status_code == 201
    only = await client.get("/v1/operator/accounts", headers=ops,
                            params={"status": "suspended"})
    assert [a["id"] for a in only.json()] == [acme.id]
    back = await client.post(f"/v1/operator/accounts/{acme.id}/status", headers=ops,
                             json={"status": "active"})
    assert back.json()["status"] == "active"
    assert (await client.post("/v1/messages", headers=acme.headers,
                              json=SEND)).status_code == 201


async def test_garbage_and_strangers_change_nothing(
        client: httpx.AsyncClient, acme: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    for body in ({"status": "sleeping"}, {"status": "suspended", "reason": ""},
                 {"status": "suspended", "reason": "x" * 501}, {}, {"reason": "x"}):
        answer = await client.post(f"/v1/operator/accounts/{acme.id}/status", headers=ops,
                                   json=body)
        assert_problem(answer, 400, "validation_failed")
    missing = await client.post("/v1/operator/accounts/acc_nothing/status", headers=ops,
                                json={"status": "suspended"})
    assert missing.status_code == 404
    as_client = await client.post(f"/v1/operator/accounts/{acme.id}/status",
                                  headers=acme.headers, json={"status": "terminated"})
    assert as_client.status_code == 401
    account = (await client.get("/v1/account", headers=acme.headers)).json()
    assert account["status"] == "active"


async def test_a_bad_account_list_query_is_refused(
        client: httpx.AsyncClient, acme: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    for params in ({"status": "sleeping"}, {"limit": 0}, {"limit": "many"},
                   {"limit": 1001}):
        assert_problem(await client.get("/v1/operator/accounts", headers=ops, params=params),
                       400, "validation_failed")
    assert_problem(await client.get("/v1/operator/accounts", headers=ops,
                                    params={"owner": "x"}), 400, "unknown_query_parameter")
    assert (await client.get("/v1/operator/accounts", headers=acme.headers)).status_code == 401
