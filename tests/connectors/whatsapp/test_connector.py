"""WhatsAppConnector against a fake Cloud API: a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.base import (
    UNAVAILABLE,
    DeliveryReport,
    EmailContent,
    OutboundMessage,
    SubmitResult,
    WhatsAppContent,
)
from tidings.connectors.whatsapp.connector import (
    MAX_RETRY_AFTER_SECONDS,
    WhatsAppConnector,
    WhatsAppSettings,
    retry_after_seconds,
)

TOKEN = "EAAJB-test-token-4f1d9c0b7e"  # a fake token, for the fake API only
APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-token-for-tests"
NUMBER_ID = "106540352242922"
CUSTOMER = "+12025550123"
BODY = "Your table for two is ready"


@dataclass(frozen=True)
class Plan:
    """How the fake answers a message to one recipient."""

    status: int = 200
    error_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a body that is not the Graph API's JSON
    delay_seconds: float = 0.0


@dataclass
class Received:
    path: str
    authorization: str | None
    content_type: str | None
    json: dict[str, Any]


@dataclass
class FakeCloudApi:
    """Answers ``POST /{version}/{phone_number_id}/messages`` like the Cloud API,
    per recipient (``plans``, keyed by the ``to`` digits); success by default."""

    base_url: str = ""
    plans: dict[str, Plan] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        authorization = request.headers.get("Authorization")
        self.received.append(Received(request.path, authorization,
                                      request.headers.get("Content-Type"), body))
        if authorization != f"Bearer {TOKEN}":
            return _graph_error(401, 190, "Invalid OAuth access token.")
        plan = self.plans.get(body["to"], Plan())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if plan.delay_seconds:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.release.wait(), plan.delay_seconds)
        finally:
            self.in_flight -= 1
        if plan.raw is not None:
            return web.Response(status=plan.status, body=plan.raw, headers=plan.headers)
        if plan.status == 200:
            return web.json_response({
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.TEST{len(self.received)}"}]})
        assert plan.error_code is not None
        return _graph_error(plan.status, plan.error_code, f"(#{plan.error_code})",
                            plan.headers)


def _graph_error(status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {
        "message": message, "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": "test details"},
        "fbtrace_id": "AbCdEf123"}}, status=status, headers=headers)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloudApi]:
    api = FakeCloudApi()
    app = web.Application()
    app.router.add_post("/{version}/{number_id}/messages", api.messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    api.base_url = f"http://{host}:{port}"
    yield api
    api.release.set()
    await runner.cleanup()


def _settings(base_url: str, **overrides: Any) -> WhatsAppSettings:
    """Settings for the fake at ``base_url``; ``overrides`` replace any field."""
    values: dict[str, Any] = {"phone_number_id": NUMBER_ID, "access_token": TOKEN,
                              "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
                              "base_url": base_url, "timeout_seconds": 2.0}
    return WhatsAppSettings(**(values | overrides))


async def _refuse(_connector: str, reports: Sequence[DeliveryReport]) -> list[bool]:
    return [False] * len(reports)


@contextlib.asynccontextmanager
async def _running(settings: WhatsAppSettings) -> AsyncIterator[WhatsAppConnector]:
    connector = WhatsAppConnector("wa-test", settings)
    await connector.start(_refuse)
    try:
        yield connector
    finally:
        await connector.stop()


@pytest.fixture
async def connector(fake: FakeCloudApi) -> AsyncIterator[WhatsAppConnector]:
    async with _running(_settings(fake.base_url)) as running:
        yield running


def _message(message_id: str = "msg_1", *, to: str = CUSTOMER, body: str = BODY,
             content: WhatsAppContent | EmailContent | None = None) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="whatsapp", to=to,
                           sender="+15550100199", body=body, encoding="GSM-7",
                           num_segments=1, content=content)


async def _submit_one(connector: WhatsAppConnector, message: OutboundMessage) -> SubmitResult:
    [result] = await connector.submit([message])
    return result


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- requests ---------------------------------------------------------------------------


async def test_text_message_is_posted_with_the_bearer_token(
        fake: FakeCloudApi, connector: WhatsAppConnector) -> None:
    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "accepted", carrier_message_id="wamid.TEST1")
    [request] = fake.received
    assert request.path == f"/v21.0/{NUMBER_ID}/messages"
    assert request.authorization == f"Bearer {TOKEN}"
    assert request.content_type == "application/json"
    assert request.json == {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": "12025550123", "type": "text", "text": {"body": BODY}}


async def test_template_with_variables(fake: FakeCloudApi,
                                       connector: WhatsAppConnector) -> None:
    content = WhatsAppContent(kind="template", template_name="order_shipped",
                              language="en_US", variables=("Ada", "ORD-9271"))

    result = await _submit_one(connector, _message(content=content))

    assert result.outcome == "accepted"
    assert fake.received[0].json == {
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "12025550123", "type": "template",
        "template": {"name": "order_shipped", "language": {"code": "en_US"},
                     "components": [{"type": "body", "parameters": [
                         {"type": "text", "text": "Ada"},
                         {"type": "text", "text": "ORD-9271"}]}]}}


async def test_template_without_variables_has_no_components(
        fake: FakeCloudApi, connector: WhatsAppConnector) -> None:
    content = WhatsAppContent(kind="template", template_name="hello_world", language="en_US")

    await _submit_one(connector, _message(content=content))

    assert fake.received[0].json["template"] == {"name": "hello_world",
                                                 "language": {"code": "en_US"}}


@pytest.mark.parametrize(("media_type", "caption", "expected"), [
    ("image", "The menu", {"link": "https://cdn.example/menu.png", "caption": "The menu"}),
    ("document", "Invoice", {"link": "https://cdn.example/menu.png", "caption": "Invoice"}),
    ("video", None, {"link": "https://cdn.example/menu.png"}),
    ("audio", None, {"link": "https://cdn.example/menu.png"}),
])
async def test_media_goes_by_link(fake: FakeCloudApi, connector: WhatsAppConnector,
                                  media_type: Any, caption: str | None,
                                  expected: dict[str, str]) -> None:
    content = WhatsAppContent(kind="media", media_type=media_type,
                              media_url="https://cdn.example/menu.png", caption=caption)

    result = await _submit_one(connector, _message(content=content))

    assert result.outcome == "accepted"
    assert fake.received[0].json == {
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "12025550123", "type": media_type, media_type: expected}


@pytest.mark.parametrize(("message", "error_code"), [
    (_message(to="12025550123"), "whatsapp_invalid_number"),
    (_message(to="+1202555012345678"), "whatsapp_invalid_number"),
    (_message(to="+١٢٠٢٥٥٥٠١٢٣"), "whatsapp_invalid_number"),  # non-ASCII digits
    (_message(content=WhatsAppContent(kind="template", language="en_US")),
     "whatsapp_invalid_template"),
    (_message(content=WhatsAppContent(kind="template", template_name="t")),
     "whatsapp_invalid_template"),
    (_message(content=WhatsAppContent(kind="media", media_type="image")),
     "whatsapp_invalid_media"),
    (_message(content=WhatsAppContent(kind="media", media_url="https://cdn.example/a.png")),
     "whatsapp_invalid_media"),
    (_message(content=WhatsAppContent(kind="media", media_type="image",
                                      media_url="ftp://cdn.example/a.png")),
     "whatsapp_invalid_media"),
    (_message(content=WhatsAppContent(kind="media", media_type="audio", caption="hi",
                                      media_url="https://cdn.example/a.ogg")),
     "whatsapp_invalid_media"),
    (_message(content=EmailContent(subject="hello")), "whatsapp_unsupported_content"),
    (_message(body="broken \ud800 text"), "whatsapp_unencodable"),
])
async def test_content_it_cannot_send_is_rejected_without_a_request(
        fake: FakeCloudApi, connector: WhatsAppConnector, message: OutboundMessage,
        error_code: str) -> None:
    result = await _submit_one(connector, message)

    assert result == SubmitResult("msg_1", "rejected", error_code=error_code)
    assert fake.received == []


# --- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [131047, 131026, 132000, 132001, 100, 131051])
async def test_permanent_errors_reject_with_the_whatsapp_code(
        fake: FakeCloudApi, connector: WhatsAppConnector, code: int) -> None:
    fake.plans["12025550123"] = Plan(400, code)

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "rejected", error_code=f"whatsapp:{code}")


async def test_rate_limit_is_a_retry_after_the_servers_delay(
        fake: FakeCloudApi, connector: WhatsAppConnector) -> None:
    fake.plans["12025550123"] = Plan(429, 130429, headers={"Retry-After": "7"})

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code="whatsapp:130429",
                                  retry_after_seconds=7.0)


@pytest.mark.parametrize(("status", "code"), [
    (400, 4), (400, 80007), (400, 130429), (400, 131056), (500, 131000), (503, 2),
    (503, 131016), (503, 133004)])
async def test_transient_errors_are_retries(fake: FakeCloudApi, connector: WhatsAppConnector,
                                            status: int, code: int) -> None:
    fake.plans["12025550123"] = Plan(status, code)

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code=f"whatsapp:{code}")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_an_answer_without_a_graph_error_retries_on_429_and_5xx(
        fake: FakeCloudApi, connector: WhatsAppConnector, status: int) -> None:
    fake.plans["12025550123"] = Plan(status, raw=b"<html>Bad gateway</html>")

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code=f"whatsapp_http_{status}")


async def test_other_statuses_without_a_graph_error_reject(
        fake: FakeCloudApi, connector: WhatsAppConnector) -> None:
    fake.plans["12025550123"] = Plan(404, raw=b"not found")

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "rejected", error_code="whatsapp_http_404")


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"messages": []}',
                                 b'{"messages": [{"id": ""}]}', b'{"messages": [{"id": 7}]}'])
async def test_success_without_a_wamid_is_retried(
        fake: FakeCloudApi, connector: WhatsAppConnector, raw: bytes) -> None:
    fake.plans["12025550123"] = Plan(200, raw=raw)

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code="whatsapp_bad_response")


@pytest.mark.parametrize("code", [190, 0, 10, 200, 368])
async def test_account_errors_make_the_connector_unavailable(
        fake: FakeCloudApi, connector: WhatsAppConnector, code: int) -> None:
    fake.plans["12025550123"] = Plan(403 if code != 190 else 401, code)

    result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code=UNAVAILABLE)


async def test_a_wrong_token_makes_the_connector_unavailable(fake: FakeCloudApi) -> None:
    async with _running(_settings(fake.base_url, access_token="expired")) as connector:
        result = await _submit_one(connector, _message())

    assert fake.received[0].authorization == "Bearer expired"
    assert result == SubmitResult("msg_1", "retry", error_code=UNAVAILABLE)


async def test_a_slow_answer_times_out_as_a_retry(fake: FakeCloudApi) -> None:
    fake.plans["12025550123"] = Plan(delay_seconds=10.0)
    started = time.monotonic()

    async with _running(_settings(fake.base_url, timeout_seconds=0.2)) as connector:
        result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code="whatsapp_timeout")
    assert time.monotonic() - started < 2.0


async def test_connection_refused_is_unavailable() -> None:
    async with _running(_settings(f"http://127.0.0.1:{_closed_port()}")) as connector:
        result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code=UNAVAILABLE)


async def test_an_unknown_host_is_unavailable() -> None:
    async with _running(_settings("http://graph.tidings-test.invalid")) as connector:
        result = await _submit_one(connector, _message())

    assert result == SubmitResult("msg_1", "retry", error_code=UNAVAILABLE)


async def test_unavailable_before_start_and_after_stop(fake: FakeCloudApi) -> None:
    connector = WhatsAppConnector("wa-test", _settings(fake.base_url))
    assert await _submit_one(connector, _message("a")) == SubmitResult(
        "a", "retry", error_code=UNAVAILABLE)

    await connector.start(_refuse)
    await connector.stop()

    assert await _submit_one(connector, _message("b")) == SubmitResult(
        "b", "retry", error_code=UNAVAILABLE)
    assert fake.received == []


async def test_stop_ends_requests_in_flight_as_retries(fake: FakeCloudApi) -> None:
    fake.plans["12025550123"] = Plan(delay_seconds=10.0)
    connector = WhatsAppConnector("wa-test", _settings(fake.base_url, concurrency=1))
    await connector.start(_refuse)
    submitting = asyncio.create_task(connector.submit([_message("sent"), _message("queued")]))
    while not fake.received:
        await asyncio.sleep(0.001)

    await connector.stop()

    results = await submitting
    assert [(r.message_id, r.outcome) for r in results] == [("sent", "retry"),
                                                            ("queued", "retry")]
    assert results[1].error_code == UNAVAILABLE
    assert len(fake.received) == 1


async def test_results_come_in_input_order(fake: FakeCloudApi,
                                           connector: WhatsAppConnector) -> None:
    fake.plans["12025550101"] = Plan(400, 131047, delay_seconds=0.05)
    fake.plans["12025550102"] = Plan(429, 130429)
    messages = [_message("slow_reject", to="+12025550101"), _message("ok"),
                _message("throttled", to="+12025550102")]

    results = await connector.submit(messages)

    assert [(r.message_id, r.outcome) for r in results] == [
        ("slow_reject", "rejected"), ("ok", "accepted"), ("throttled", "retry")]


# --- idempotency and concurrency ---------------------------------------------------------


async def test_a_repeated_submit_gets_the_first_answer_without_a_request(
        fake: FakeCloudApi, connector: WhatsAppConnector) -> None:
    first = await _submit_one(connector, _message())
    again = await _submit_one(connector, _message())

    assert again == first
    assert len(fake.received) == 1


async def test_the_same_message_twice_at_once_makes_one_request(
        fake: FakeCloudApi, connector: WhatsAppConnector) -> None:
    fake.plans["12025550123"] = Plan(delay_seconds=0.05)

    results = await asyncio.gather(connector.submit([_message(), _message()]),
                                   connector.submit([_message()]))

    assert len(fake.received) == 1
    assert {r for batch in results for r in batch} == {
        SubmitResult("msg_1", "accepted", carrier_message_id="wamid.TEST1")}


async def test_a_rejection_is_remembered(fake: FakeCloudApi,
                                         connector: WhatsAppConnector) -> None:
    fake.plans["12025550123"] = Plan(400, 131047)

    first = await _submit_one(connector, _message())
    again = await _submit_one(connector, _message())

    assert again == first
    assert len(fake.received) == 1


async def test_a_retry_is_not_remembered(fake: FakeCloudApi,
                                         connector: WhatsAppConnector) -> None:
    fake.plans["12025550123"] = Plan(500, raw=b"")
    assert (await _submit_one(connector, _message())).outcome == "retry"

    del fake.plans["12025550123"]
    result = await _submit_one(connector, _message())

    assert result.outcome == "accepted"
    assert len(fake.received) == 2


async def test_requests_in_flight_stay_within_the_concurrency(fake: FakeCloudApi) -> None:
    fake.plans["12025550123"] = Plan(delay_seconds=0.02)
    messages = [_message(f"msg_{i}") for i in range(12)]

    async with _running(_settings(fake.base_url, concurrency=3)) as connector:
        results = await connector.submit(messages)

    assert all(r.outcome == "accepted" for r in results)
    assert len(fake.received) == 12
    assert fake.max_in_flight == 3


# --- what never leaks -------------------------------------------------------------------


async def test_logs_hold_neither_the_token_nor_numbers_nor_bodies(
        fake: FakeCloudApi, caplog: pytest.LogCaptureFixture) -> None:
    fake.plans["12025550101"] = Plan(400, 131047)
    fake.plans["12025550102"] = Plan(429, 130429, headers={"Retry-After": "1"})
    fake.plans["12025550103"] = Plan(500, raw=b"oops")
    fake.plans["12025550104"] = Plan(403, 10)
    messages = [_message(f"msg_{n}", to=f"+1202555010{n}") for n in range(5)]
    caplog.set_level(logging.DEBUG)

    with structlog.testing.capture_logs() as events:
        async with _running(_settings(fake.base_url)) as connector:
            await connector.submit(messages)

    assert {e["event"] for e in events} >= {"whatsapp_submit_not_accepted",
                                            "whatsapp_account_error"}
    logged = repr(events) + caplog.text
    for secret in (TOKEN, "2025550", BODY):
        assert secret not in logged


def test_settings_repr_hides_the_secrets() -> None:
    shown = repr(_settings("https://graph.facebook.com"))

    assert NUMBER_ID in shown
    for secret in (TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in shown


# --- settings and Retry-After -----------------------------------------------------------


def test_settings_defaults_and_url() -> None:
    settings = WhatsAppSettings(phone_number_id=NUMBER_ID, access_token=TOKEN,
                                app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)

    assert settings.messages_url == f"https://graph.facebook.com/v21.0/{NUMBER_ID}/messages"
    assert _settings("http://localhost:8080/").messages_url == (
        f"http://localhost:8080/v21.0/{NUMBER_ID}/messages")


@pytest.mark.parametrize("overrides", [
    {"phone_number_id": "../me"}, {"phone_number_id": ""}, {"api_version": "21"},
    {"api_version": "v21.0/../x"}, {"base_url": "graph.facebook.com"},
    {"access_token": ""}, {"timeout_seconds": 0}, {"concurrency": 0}])
def test_bad_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        _settings(**({"base_url": "https://graph.facebook.com"} | overrides))


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None), ("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("86400", MAX_RETRY_AFTER_SECONDS),
    ("nan", None), ("soon", None), ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
    ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0)])
def test_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    assert retry_after_seconds(header, now) == seconds


@given(st.text())
def test_retry_after_never_raises(header: str) -> None:
    seconds = retry_after_seconds(header, datetime(2026, 1, 1, tzinfo=UTC))

    assert seconds is None or (math.isfinite(seconds)
                               and 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS)
