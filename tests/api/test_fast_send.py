"""The plain-send fast path: answers what it can, hands everything else over untouched.

``FastSend`` runs here in front of an inner app that records what reaches it, on
the real runtime and database; the HTTP tests of the messages API go through the
same middleware in the full app.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from tests.conftest import Tenant, make_tenant, stored_counts
from tidings.accounts.models import AccountStatus
from tidings.messaging.fast_send import FastSend
from tidings.runtime import Runtime

GOOD = {"to": "+12025550173", "from": "Acme", "body": "Hello"}


class Inner:
    """The framework behind the fast path: records the requests handed to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"framework"})


async def call(rt: Runtime, inner: Inner, body: bytes, *, headers: dict[str, str],
               method: str = "POST", path: str = "/v1/messages") -> httpx.Response:
    app = FastSend(inner)

    async def with_runtime(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = SimpleNamespace(state=SimpleNamespace(runtime=rt))
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=with_runtime)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidings.test") as c:
        return await c.request(method, path, content=body, headers=headers)


def json_headers(tenant: Tenant, **extra: str) -> dict[str, str]:
    return {**tenant.headers, "Content-Type": "application/json", **extra}


async def test_a_plain_send_is_answered_without_the_framework(
        rt: Runtime, acme: Tenant, client: httpx.AsyncClient) -> None:
    inner = Inner()
    response = await call(rt, inner, orjson.dumps(GOOD), headers=json_headers(acme))
    assert inner.bodies == []
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    sent = response.json()
    stored = (await client.get(f"/v1/messages/{sent['id']}", headers=acme.headers)).json()
    assert {k: stored[k] for k in sent if k != "events"} == {
        k: v for k, v in sent.items() if k != "events"}
    assert sent["status"] == "queued"
    assert (sent["to"], sent["from"], sent["body"]) == ("+12025550173", "Acme", "Hello")


async def test_the_answer_matches_the_framework_endpoint(
        acme: Tenant, client: httpx.AsyncClient) -> None:
    fast = await client.post("/v1/messages", json=GOOD, headers=acme.headers)
    framework = await client.post("/v1/messages", json=GOOD,
                                  headers={**acme.headers, "Idempotency-Key": "k-1"})
    assert fast.status_code == framework.status_code == 201
    fast_body, framework_body = fast.json(), framework.json()
    assert fast_body.keys() == framework_body.keys()
    for key in ("status", "to", "from", "body", "encoding", "num_segments", "channel",
                "direction", "account_id", "events", "error_code"):
        assert fast_body[key] == framework_body[key], key


@pytest.mark.parametrize(("body", "extra"), [
    (b"{not json", {}),
    (orjson.dumps({**GOOD, "to": "12"}), {}),
    (orjson.dumps({**GOOD, "surprise": 1}), {}),
    (orjson.dumps({**GOOD, "body": ""}), {}),
    (orjson.dumps([GOOD]), {}),
    (orjson.dumps(GOOD), {"Idempotency-Key": "k-2"}),
    (orjson.dumps(GOOD), {"Tidings-Account": "x" * 41}),
    (orjson.dumps(GOOD), {"Tidings-Account": "acc_nobody"}),
    (orjson.dumps(GOOD), {"Authorization": "Bearer tdk_wrong"}),
    (orjson.dumps(GOOD), {"Content-Type": "text/plain"}),
])
async def test_anything_but_a_plain_valid_send_goes_to_the_framework_unread(
        rt: Runtime, acme: Tenant, body: bytes, extra: dict[str, str]) -> None:
    before = await stored_counts(rt)
    inner = Inner()
    response = await call(rt, inner, body, headers=json_headers(acme, **extra))
    assert (response.status_code, response.content) == (299, b"framework")
    assert inner.bodies == [body]
    assert await stored_counts(rt) == before


async def test_an_account_that_may_not_send_goes_to_the_framework(rt: Runtime) -> None:
    suspended = await make_tenant(rt, "Initech", status=AccountStatus.SUSPENDED)
    inner = Inner()
    response = await call(rt, inner, orjson.dumps(GOOD), headers=json_headers(suspended))
    assert response.status_code == 299
    assert len(inner.bodies) == 1


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/messages"),
                                              ("POST", "/v1/messages/batch"),
                                              ("POST", "/v1/messages/")])
async def test_other_routes_pass_through(rt: Runtime, acme: Tenant, method: str,
                                         path: str) -> None:
    inner = Inner()
    kwargs: dict[str, Any] = {"method": method, "path": path}
    response = await call(rt, inner, orjson.dumps(GOOD), headers=json_headers(acme), **kwargs)
    assert response.status_code == 299
