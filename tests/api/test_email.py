"""The email channel end to end: POST /v1/messages → a real SMTP relay, and a real bounce
into our SMTP listener → undelivered, with the webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select

from tests.conftest import HookServer, Tenant, assert_problem, assign, settle, stored_counts
from tests.connectors.smtp.test_bounces import a_dsn
from tests.connectors.smtp.test_connector import start_relay  # noqa: F401 - a fixture
from tidings.audit.models import AuditEvent
from tidings.connectors.smtp.connector import SmtpConnector, SmtpSettings
from tidings.connectors.smtp.listener import SmtpListenerSettings
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

MAIL_DOMAIN = "mail.tidings.test"
EMAIL = {"channel": "email", "to": "Bob@Example.NET", "from": "news@acme.example",
         "subject": "Your order", "body": "It ships today.", "html": "<p>It ships today.</p>"}


@pytest.fixture
async def relay(rt: Runtime, start_relay: Any) -> AsyncIterator[tuple[Any, SmtpConnector]]:  # noqa: F811
    recording, port = await start_relay()
    smtp = SmtpConnector("mail", SmtpSettings(
        host="127.0.0.1", port=port, mail_domain=MAIL_DOMAIN, security="none",
        timeout_seconds=2.0, listener=SmtpListenerSettings(port=0)))
    await rt.connectors.replace(smtp)
    await smtp.start(rt.report_sink, rt.inbound_sink)
    yield recording, smtp
    await rt.connectors.remove("mail")
    await smtp.stop()


async def test_an_email_goes_through_the_relay_with_subject_and_html(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        relay: tuple[Any, SmtpConnector]) -> None:
    recording, _ = relay
    sent = await client.post("/v1/messages", json=EMAIL, headers=acme.headers)
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert (body["to"], body["subject"], body["encoding"]) == (
        "Bob@example.net", "Your order", "UTF-8")
    await settle(rt, clock)
    [mail] = recording.received
    parsed = mail.mail()
    assert parsed["Subject"] == "Your order"
    assert parsed["Message-ID"] == f"<{body['id']}@{MAIL_DOMAIN}>"
    assert mail.rcpt_tos == ["Bob@example.net"]
    parts = {p.get_content_type(): p.get_content() for p in parsed.walk()
             if not p.is_multipart()}
    assert parts["text/plain"].strip() == "It ships today."
    assert parts["text/html"].strip() == "<p>It ships today.</p>"
    read = (await client.get(f"/v1/messages/{body['id']}", headers=acme.headers)).json()
    assert read["status"] == "sent"
    assert read["html"] == "<p>It ships today.</p>"
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        row = await session.get(Message, body["id"])
        audit = (await session.scalars(select(AuditEvent).where(
            AuditEvent.row_id == body["id"]))).all()
    assert row is not None
    assert row.content_enc is not None
    assert b"Your order" not in row.content_enc
    assert b"ships" not in row.content_enc
    assert "content" in audit[0].fields


async def test_a_bounce_into_our_listener_makes_it_undelivered(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        acme: Tenant, relay: tuple[Any, SmtpConnector]) -> None:
    _, smtp = relay
    sent = await client.post("/v1/messages", json={**EMAIL, "status_callback": hooks.url},
                             headers=acme.headers)
    message_id = sent.json()["id"]
    await settle(rt, clock)
    assert smtp.listener_port is not None
    await aiosmtplib.send(a_dsn(f"{message_id}@{MAIL_DOMAIN}"), hostname="127.0.0.1",
                          port=smtp.listener_port, sender="mailer-daemon@mx.example.net",
                          recipients=["news@acme.example"])
    await settle(rt, clock)
    read = (await client.get(f"/v1/messages/{message_id}", headers=acme.headers)).json()
    assert read["status"] == "undelivered"
    assert read["error_code"] == "smtp_dsn:5.1.1"
    assert [b["data"]["status"] for b in hooks.bodies()] == ["queued", "sent", "undelivered"]


@pytest.mark.parametrize(("change", "code"), [
    ({"subject": None}, "validation_failed"),
    ({"subject": "Hi\r\nBcc: all@example.com"}, "validation_failed"),
    ({"to": "not-an-address"}, "invalid_email_address"),
    ({"to": "bob@example.net\r\nBcc: x@y.z"}, "invalid_email_address"),
    ({"from": "Acme"}, "invalid_email_address"),
    ({"to": "a" * 250 + "@x.com"}, "validation_failed"),
    ({"body": "x" * 100_001}, "validation_failed"),
    ({"channel": "sms"}, "validation_failed"),  # subject and html are for email only
])
async def test_bad_emails_are_refused_and_nothing_is_stored(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, change: dict[str, Any],
        code: str) -> None:
    payload = {k: v for k, v in {**EMAIL, **change}.items() if v is not None}
    assert_problem(await client.post("/v1/messages", json=payload, headers=acme.headers),
                   400, code)
    counts = await stored_counts(rt)
    assert counts["messages"] == 0


async def test_an_email_batch_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                         acme: Tenant) -> None:
    response = await client.post("/v1/messages/batch", headers=acme.headers, json={
        "channel": "email", "from": "news@acme.example", "body": "Hi {name}",
        "recipients": [{"to": "bob@example.net", "variables": {"name": "Bob"}}]})
    assert_problem(response, 400, "channel_unavailable")


async def test_without_an_email_connector_the_message_is_rejected_no_route(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await client.post("/v1/messages", json=EMAIL, headers=acme.headers)
    await settle(rt, clock)
    read = (await client.get(f"/v1/messages/{sent.json()['id']}", headers=acme.headers)).json()
    assert (read["status"], read["error_code"]) == ("rejected", "no_route")
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert (await session.get(Message, sent.json()["id"])) is not None


async def test_mail_to_an_address_the_account_owns_is_an_inbound_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        acme: Tenant, relay: tuple[Any, SmtpConnector]) -> None:
    _, smtp = relay
    claimed = await assign(rt, acme.id, "Support@Acme.Example")
    assert claimed["number"] == "Support@acme.example"
    await client.patch("/v1/account", json={"webhook_url": hooks.url},
                       headers=acme.headers)
    mail = (b"From: Ann <ann@example.net>\r\nTo: Support@acme.example\r\n"
            b"Subject: Question\r\nMessage-ID: <q1@example.net>\r\n\r\nIs it shipped?\r\n")
    assert smtp.listener_port is not None
    await aiosmtplib.send(mail, hostname="127.0.0.1", port=smtp.listener_port,
                          sender="ann@example.net", recipients=["Support@acme.example"])
    inbound = (await client.get("/v1/messages?direction=inbound",
                                headers=acme.headers)).json()["data"]
    assert [(m["channel"], m["from"], m["to"], m["body"].strip()) for m in inbound] == [
        ("email", "ann@example.net", "Support@acme.example", "Is it shipped?")]
    await settle(rt, clock)
    assert [b["type"] for b in hooks.bodies()] == ["message.inbound"]


async def test_mail_to_an_address_nobody_owns_is_dropped(
        client: httpx.AsyncClient, rt: Runtime, relay: tuple[Any, SmtpConnector]) -> None:
    _, smtp = relay
    mail = b"From: a@example.net\r\nTo: x@nobody.example\r\nSubject: Hi\r\n\r\nHi\r\n"
    assert smtp.listener_port is not None
    await aiosmtplib.send(mail, hostname="127.0.0.1", port=smtp.listener_port,
                          sender="a@example.net", recipients=["x@nobody.example"])
    assert (await stored_counts(rt))["messages"] == 0
