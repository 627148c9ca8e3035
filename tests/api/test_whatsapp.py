"""WhatsApp end to end: sends to a fake Cloud API over HTTP, the 24-hour window, and the
signed webhooks that bring statuses and customer messages back."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests.conftest import Tenant, assert_problem, assign, own_number, settle, stored_counts
from tidings.connectors.whatsapp.connector import WhatsAppConnector, WhatsAppSettings
from tidings.core.clock import FakeClock
from tidings.operators.service import do_create_operator_key
from tidings.routing.schemas import WhatsAppConnectorIn
from tidings.routing.service import OPERATOR_KEYRING, do_create_connector
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

CUSTOMER, OUR_NUMBER = "+12025550173", "+12025550199"
SECRET, TOKEN, VERIFY, NUMBER_ID = "app-secret-1", "token-1", "verify-1", "106540352242922"
HOOK = "/v1/whatsapp/wa/webhook"
TEMPLATE = {"channel": "whatsapp", "to": CUSTOMER, "from": OUR_NUMBER,
            "body": "Order 42 for Ann is on its way.",
            "template": {"name": "order_update", "language": "en_US",
                         "variables": ["Ann", "42"]}}
TEXT = {"channel": "whatsapp", "to": CUSTOMER, "from": OUR_NUMBER, "body": "Thanks, Ann!"}


@dataclass
class CloudApi:
    """A fake Cloud API on loopback: records requests, answers with wamids."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def cloud() -> AsyncIterator[CloudApi]:
    api = CloudApi()

    async def messages(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        api.requests.append(await request.json())
        return web.json_response({"messaging_product": "whatsapp",
                                  "messages": [{"id": f"wamid.OUT{len(api.requests)}"}]})

    app = web.Application()
    app.router.add_post(f"/v21.0/{NUMBER_ID}/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield api
    await runner.cleanup()


@pytest.fixture
async def whatsapp(rt: Runtime, cloud: CloudApi, clock: FakeClock,
                   acme: Tenant) -> AsyncIterator[WhatsAppConnector]:
    body = WhatsAppConnectorIn(name="wa", phone_number_id=NUMBER_ID, access_token=TOKEN,
                               app_secret=SECRET, verify_token=VERIFY, base_url=cloud.url)
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_create_connector(session, keys=keys, body=body, now=clock.now())
    await assign(rt, acme.id, OUR_NUMBER)
    connector = WhatsAppConnector("wa", WhatsAppSettings(
        phone_number_id=NUMBER_ID, access_token=TOKEN, app_secret=SECRET,
        verify_token=VERIFY, base_url=cloud.url))
    await rt.connectors.replace(connector)
    await connector.start(rt.report_sink, rt.inbound_sink)
    yield connector
    await rt.connectors.remove("wa")
    await connector.stop()


def signed(payload: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    raw = orjson.dumps(payload)
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"content": raw, "headers": {"X-Hub-Signature-256": f"sha256={digest}",
                                        "content-type": "application/json"}}


def webhook(*, statuses: list[dict[str, Any]] | None = None,
            messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": {
        "display_phone_number": OUR_NUMBER[1:], "phone_number_id": NUMBER_ID}}
    if statuses is not None:
        value["statuses"] = statuses
    if messages is not None:
        value["contacts"] = [{"profile": {"name": "Ann"}, "wa_id": CUSTOMER[1:]}]
        value["messages"] = messages
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}


def customer_says(text: str, wamid: str = "wamid.IN1", at: int = 0) -> dict[str, Any]:
    return webhook(messages=[{"from": CUSTOMER[1:], "id": wamid, "timestamp": str(at),
                              "type": "text", "text": {"body": text}}])


async def test_a_template_goes_out_of_the_window_and_its_status_comes_back(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        cloud: CloudApi, whatsapp: WhatsAppConnector) -> None:
    sent = await client.post("/v1/messages", json=TEMPLATE, headers=acme.headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["template"]["variables"] == ["Ann", "42"]
    await settle(rt, clock)
    [request] = cloud.requests
    assert request["to"] == CUSTOMER[1:]
    assert request["template"]["name"] == "order_update"
    assert [p["text"] for p in request["template"]["components"][0]["parameters"]] == [
        "Ann", "42"]
    for status in ("delivered", "read"):
        payload = webhook(statuses=[{"id": "wamid.OUT1", "status": status,
                                     "timestamp": "1750263773", "recipient_id": CUSTOMER[1:]}])
        answer = await client.post(HOOK, **signed(payload))
        assert answer.status_code == 200, answer.text
    await settle(rt, clock)
    read = (await client.get(f"/v1/messages/{sent.json()['id']}", headers=acme.headers)).json()
    assert read["status"] == "delivered"
    assert [(e["status"], e["applied"]) for e in read["events"]][-3:] == [
        ("delivered", True), ("delivered", False), ("read", False)]


async def test_free_text_needs_the_customer_to_have_written_in_the_last_24_hours(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        cloud: CloudApi, whatsapp: WhatsAppConnector) -> None:
    closed = await client.post("/v1/messages", json=TEXT, headers=acme.headers)
    assert_problem(closed, 400, "whatsapp_window_closed")
    assert (await stored_counts(rt))["messages"] == 0
    answer = await client.post(HOOK, **signed(customer_says("Where is my order?")))
    assert answer.status_code == 200, answer.text
    inbound = (await client.get("/v1/messages?direction=inbound",
                                headers=acme.headers)).json()["data"]
    assert [(m["from"], m["body"], m["channel"]) for m in inbound] == [
        (CUSTOMER, "Where is my order?", "whatsapp")]
    reply = await client.post("/v1/messages", json=TEXT, headers=acme.headers)
    assert reply.status_code == 201, reply.text
    await settle(rt, clock)
    assert cloud.requests[-1]["text"]["body"] == "Thanks, Ann!"
    clock.advance(24 * 3600 + 1)
    assert_problem(await client.post("/v1/messages", json=TEXT, headers=acme.headers),
                   400, "whatsapp_window_closed")


async def test_a_redelivered_customer_message_is_stored_once(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        whatsapp: WhatsAppConnector) -> None:
    for _ in range(3):
        answer = await client.post(HOOK, **signed(customer_says("Hi", wamid="wamid.SAME")))
        assert answer.status_code == 200
    inbound = (await client.get("/v1/messages?direction=inbound",
                                headers=acme.headers)).json()["data"]
    assert len(inbound) == 1


async def test_the_handshake_echoes_the_challenge_only_with_the_verify_token(
        client: httpx.AsyncClient, whatsapp: WhatsAppConnector) -> None:
    ok = await client.get(HOOK, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                        "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = await client.get(HOOK, params={"hub.mode": "subscribe", "hub.verify_token": "no",
                                         "hub.challenge": "1158201444"})
    assert_problem(bad, 403, "whatsapp_verify_failed")
    assert_problem(await client.get("/v1/whatsapp/nope/webhook"), 404, "connector_not_found")


@pytest.mark.parametrize("headers", [
    {}, {"X-Hub-Signature-256": "sha256=" + "0" * 64}, {"X-Hub-Signature-256": "garbage"}])
async def test_unsigned_or_badly_signed_webhooks_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, whatsapp: WhatsAppConnector,
        headers: dict[str, str]) -> None:
    raw = orjson.dumps(customer_says("Hi"))
    answer = await client.post(HOOK, content=raw, headers=headers)
    assert_problem(answer, 403, "invalid_signature")
    wrong_secret = await client.post(HOOK, **signed(customer_says("Hi"), secret="other"))
    assert_problem(wrong_secret, 403, "invalid_signature")
    assert (await stored_counts(rt))["messages"] == 0


async def test_a_signed_garbage_payload_is_a_400(client: httpx.AsyncClient, rt: Runtime,
                                                 whatsapp: WhatsAppConnector) -> None:
    answer = await client.post(HOOK, **signed({"object": "something else"}))
    assert_problem(answer, 400, "invalid_payload")
    assert (await stored_counts(rt))["messages"] == 0


@pytest.mark.parametrize(("change", "code"), [
    ({"template": {"name": "Has Spaces"}}, "validation_failed"),
    ({"template": {"name": "ok", "language": "english!"}}, "validation_failed"),
    ({"media": {"type": "gif", "url": "https://x.example/a.gif"}}, "validation_failed"),
    ({"media": {"type": "image", "url": "ftp://x.example/a.png"}}, "validation_failed"),
    ({"media": {"type": "image", "url": "https://x.example/a.png"}}, "validation_failed"),
    ({"to": "not a number"}, "invalid_phone_number"),
    ({"channel": "sms"}, "validation_failed"),  # templates are WhatsApp only
])
async def test_bad_whatsapp_sends_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                              acme: Tenant, change: dict[str, Any],
                                              code: str) -> None:
    assert_problem(await client.post("/v1/messages", json={**TEMPLATE, **change},
                                     headers=acme.headers), 400, code)
    assert (await stored_counts(rt))["messages"] == 0


# --------------------------------------------------------------------------- Meta's test numbers

META_TEST_NUMBER = "+15550783881"  # a new app's number in Meta's own examples: no plan knows it


async def add_connector(rt: Runtime, clock: FakeClock, name: str = "wa",
                        number_id: str = NUMBER_ID, **extra: Any) -> None:
    body = WhatsAppConnectorIn(name=name, phone_number_id=number_id, access_token=TOKEN,
                               app_secret=SECRET, verify_token=VERIFY, **extra)
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_create_connector(session, keys=keys, body=body, now=clock.now())


def meta_customer_says(text: str) -> dict[str, Any]:
    payload = customer_says(text)
    payload["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"] = (
        META_TEST_NUMBER[1:])
    return payload


async def test_a_connectors_test_number_is_an_accounts_number_and_takes_its_messages(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await add_connector(rt, clock, display_phone_number="+1 555-078-3881")
    # The operator gives it, or an account claims it (the code goes to it by SMS).
    assigned = await assign(rt, acme.id, "+1 (555) 078-3881")
    assert assigned["number"] == META_TEST_NUMBER
    listed = (await client.get("/v1/numbers", headers=acme.headers)).json()
    assert [n["number"] for n in listed] == [META_TEST_NUMBER]
    await client.delete(f"/v1/numbers/{assigned['id']}", headers=acme.headers)
    claimed = await own_number(client, rt, acme.headers, "+1 555 078 3881")
    assert claimed["number"] == META_TEST_NUMBER

    answer = await client.post(HOOK, **signed(meta_customer_says("Hello from the test app")))
    assert answer.status_code == 200, answer.text
    inbound = (await client.get("/v1/messages?direction=inbound",
                                headers=acme.headers)).json()["data"]
    assert [(m["to"], m["from"], m["body"], m["channel"]) for m in inbound] == [
        (META_TEST_NUMBER, CUSTOMER, "Hello from the test app", "whatsapp")]


async def test_a_test_number_no_connector_names_is_still_refused(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await add_connector(rt, clock)  # without its display number
    for body in ({"number": META_TEST_NUMBER}, {"number": "+1 555 078 3882"}):
        assert_problem(await client.post("/v1/numbers", headers=acme.headers, json=body),
                       400, "invalid_phone_number")
    # Another connector's number is that connector's, not any number like it.
    await add_connector(rt, clock, "wa-2", "1", display_phone_number=META_TEST_NUMBER)
    assert_problem(await client.post("/v1/numbers", headers=acme.headers,
                                     json={"number": "+1 555 078 3882"}),
                   400, "invalid_phone_number")
    assert (await stored_counts(rt))["messages"] == 0


@pytest.mark.parametrize("display", ["five", "+1 555 078 3881 ext 2", "+0555", "1" * 16, "+"])
async def test_a_bad_display_number_is_refused(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, display: str) -> None:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        made = await do_create_operator_key(session, name="ops", now=clock.now())
    response = await client.post("/v1/operator/connectors", headers={
        "Authorization": f"Bearer {made.secret}"}, json={
        "kind": "whatsapp", "name": "wa", "phone_number_id": NUMBER_ID, "access_token": TOKEN,
        "app_secret": SECRET, "verify_token": VERIFY, "display_phone_number": display})
    assert_problem(response, 400, "validation_failed")

# Meta's "errors messages webhook": value.errors[] is about the number, not one message.
RATE_LIMIT = {"code": 130429, "title": "Rate limit hit", "message": "(#130429) Rate limit hit",
              "error_data": {"details": f"Throughput reached sending to {CUSTOMER}"},
              "href": "/docs/whatsapp/cloud-api/support/error-codes/"}


def value_errors(*errors: dict[str, Any]) -> dict[str, Any]:
    payload = webhook()
    payload["entry"][0]["changes"][0]["value"]["errors"] = list(errors)
    return payload


async def operator_headers(rt: Runtime, clock: FakeClock) -> dict[str, str]:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        made = await do_create_operator_key(session, name="ops", now=clock.now())
    return {"Authorization": f"Bearer {made.secret}"}


async def test_value_level_errors_are_logged_counted_and_shown_to_the_operator(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        whatsapp: WhatsAppConnector) -> None:
    ops = await operator_headers(rt, clock)
    with capture_logs() as logged:
        answer = await client.post(HOOK, **signed(value_errors(RATE_LIMIT, RATE_LIMIT)))
    assert answer.status_code == 200, answer.text

    shown = await client.get("/v1/operator/connectors/wa/errors", headers=ops)
    assert shown.status_code == 200, shown.text
    assert [(e["code"], e["title"]) for e in shown.json()] == [
        (130429, "Rate limit hit"), (130429, "Rate limit hit")]
    assert shown.json()[0]["occurred_at"].startswith(clock.now().date().isoformat())
    lines = [e for e in logged if e["event"] == "whatsapp_connector_error"]
    assert [(e["connector"], e["code"], e["title"]) for e in lines] == [
        ("wa", 130429, "Rate limit hit")] * 2
    assert CUSTOMER[1:] not in repr(logged) + shown.text
    metrics = (await client.get("/metrics")).text
    assert 'tidings_connector_errors_total{code="130429",connector="wa"} 2.0' in metrics
    assert (await stored_counts(rt))["messages"] == 0


async def test_connector_errors_need_an_operator_key_and_a_known_connector(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        whatsapp: WhatsAppConnector) -> None:
    ops = await operator_headers(rt, clock)
    assert_problem(await client.get("/v1/operator/connectors/wa/errors",
                                    headers=acme.headers), 401, "invalid_operator_key")
    assert_problem(await client.get("/v1/operator/connectors/nope/errors", headers=ops),
                   404, "connector_not_found")
    assert_problem(await client.get("/v1/operator/connectors/wa/errors?limit=0",
                                    headers=ops), 400, "validation_failed")


async def test_badly_signed_or_malformed_errors_are_not_recorded(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        whatsapp: WhatsAppConnector) -> None:
    ops = await operator_headers(rt, clock)
    assert_problem(await client.post(HOOK, **signed(value_errors(RATE_LIMIT), secret="x")),
                   403, "invalid_signature")
    assert_problem(await client.post(HOOK, **signed(value_errors({"code": "130429"}))),
                   400, "invalid_payload")
    shown = await client.get("/v1/operator/connectors/wa/errors", headers=ops)
    assert shown.json() == []
