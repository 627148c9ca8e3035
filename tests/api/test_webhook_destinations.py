"""Webhook URLs may not reach loopback, private, link-local or metadata addresses.

These tests run with ``webhook_allow_private`` off, as a production deployment does;
the suite's other tests turn it on for their receivers on loopback.
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from tests.api.test_webhook_delivery import SEND, deliveries, delivery, one_inbound
from tests.conftest import (
    TEST_ACTOR,
    HookServer,
    Tenant,
    assert_problem,
    assign,
    make_tenant,
    settle,
    stored_counts,
)
from tidings.accounts.service import do_update_account, get_account
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.runtime import Runtime
from tidings.webhooks.sender import WebhookRequest

# Loopback in every spelling the resolver takes, then the other refused places.
LOOPBACK = ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::1]",
            "[::ffff:127.0.0.1]", "localhost", "0.0.0.0", "LOCALHOST.", "api.localhost"]
PRIVATE = ["10.1.2.3", "192.168.0.10", "172.16.5.4", "[fd00::1]", "100.64.0.1"]
ALWAYS_REFUSED = ["169.254.169.254", "metadata.google.internal", "[fe80::1]",
                  "[::ffff:169.254.169.254]", "169.254.170.2", "[fd00:ec2::254]"]
REFUSED = [f"http://{host}:8080/hook" for host in LOOPBACK + PRIVATE + ALWAYS_REFUSED]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": False})


@pytest.mark.parametrize("url", REFUSED)
async def test_an_account_webhook_url_to_a_local_address_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, url: str) -> None:
    before = await stored_counts(rt)
    response = await client.patch("/v1/account", headers=acme.headers,
                                  json={"webhook_url": url})
    assert_problem(response, 400, "webhook_url_refused")
    assert "webhook_url" in response.json()["detail"]
    assert (await client.get("/v1/account", headers=acme.headers)).json()["webhook_url"] is None
    assert await stored_counts(rt) == before


@pytest.mark.parametrize("url", ["http://127.1:8080/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/latest/meta-data/"])
async def test_a_numbers_webhook_url_to_a_local_address_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, url: str) -> None:
    number = await assign(rt, acme.id, "+12025550111")
    before = await stored_counts(rt)
    response = await client.patch(f"/v1/numbers/{number['id']}", headers=acme.headers,
                                  json={"webhook_url": url})
    assert_problem(response, 400, "webhook_url_refused")
    listed = (await client.get("/v1/numbers", headers=acme.headers)).json()
    assert [n["webhook_url"] for n in listed] == [None]
    assert await stored_counts(rt) == before


@pytest.mark.parametrize("url", REFUSED)
async def test_a_status_callback_to_a_local_address_is_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, url: str) -> None:
    before = await stored_counts(rt)
    response = await client.post("/v1/messages", headers=acme.headers,
                                 json={**SEND, "status_callback": url})
    assert_problem(response, 400, "webhook_url_refused")
    assert "status_callback" in response.json()["detail"]
    batch = await client.post("/v1/messages/batch", headers=acme.headers, json={
        "from": "Acme", "body": "Hi", "status_callback": url,
        "recipients": [{"to": "+12025550173"}]})
    assert_problem(batch, 400, "webhook_url_refused")
    assert await stored_counts(rt) == before


async def test_a_sub_account_with_a_metadata_webhook_url_is_not_created(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = await stored_counts(rt)
    response = await client.post("/v1/accounts", headers=acme.headers, json={
        "name": "Sub", "webhook_url": "http://169.254.169.254/latest/meta-data/"})
    assert_problem(response, 400, "webhook_url_refused")
    assert (await client.get("/v1/accounts", headers=acme.headers)).json() == []
    assert await stored_counts(rt) == before


@pytest.mark.parametrize("url", ["http:///x", "https://:443/x", "http://@/x"])
async def test_a_url_without_a_host_is_a_validation_problem(
        client: httpx.AsyncClient, acme: Tenant, url: str) -> None:
    account = await client.patch("/v1/account", headers=acme.headers, json={"webhook_url": url})
    assert_problem(account, 400, "validation_failed")
    message = await client.post("/v1/messages", headers=acme.headers,
                                json={**SEND, "status_callback": url})
    assert_problem(message, 400, "validation_failed")


async def test_public_urls_are_taken(client: httpx.AsyncClient, acme: Tenant) -> None:
    response = await client.patch("/v1/account", headers=acme.headers,
                                  json={"webhook_url": "https://hooks.example.com/tidings"})
    assert response.status_code == 200, response.text
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={**SEND, "status_callback": "http://93.184.216.34/cb"})
    assert sent.status_code == 201, sent.text


async def test_a_url_saved_before_is_refused_when_the_webhook_connects(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    """The connect-time check: a loopback receiver that listens gets nothing."""
    acme = await make_tenant(rt, "Acme")
    async with rt.db.transaction(tenant=acme.id) as session:  # as if saved before the check
        account = await get_account(session, account_id=acme.id)
        await do_update_account(session, account=account, actor=TEST_ACTOR,
                                now=clock.now(), webhook_url=hooks.url)
    await one_inbound(client, rt, acme)
    await settle(rt, clock)

    [listed] = await deliveries(client, acme.headers)
    assert hooks.requests == []
    assert (listed["status"], listed["attempts"], listed["last_status_code"]) == (
        "pending", 1, None)
    assert listed["last_error"] == ("refused destination: the host is a loopback address "
                                    "(TIDINGS_WEBHOOK_ALLOW_PRIVATE is off)")
    [attempt] = (await delivery(client, acme.headers, listed["id"]))["attempt_log"]
    assert attempt["error"] == listed["last_error"]


async def test_a_name_is_checked_on_every_address_it_resolves_to(
        rt: Runtime, hooks: HookServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with one public and one loopback address is refused, and nothing is sent
    to either."""
    async def resolve(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        assert host == "hooks.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
    port = hooks.url.split(":")[2].split("/")[0]
    result = await rt.webhook_sender.send(WebhookRequest(
        f"http://hooks.example.com:{port}/hook", b"{}", {}))
    assert (result.ok, result.status_code) == (False, None)
    assert (result.error or "").startswith("refused destination: the host is a loopback")
    assert hooks.requests == []
