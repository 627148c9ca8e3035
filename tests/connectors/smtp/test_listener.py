"""The SMTP listener, driven by a real SMTP client (aiosmtplib) on loopback."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest

from tests.connectors.smtp.test_bounces import a_dsn, a_mail
from tests.connectors.smtp.test_connector import Certificate, make_certificate
from tidings.connectors.base import DeliveryReport, InboundMessage
from tidings.connectors.smtp.connector import SmtpConnector, SmtpSettings
from tidings.connectors.smtp.listener import SmtpListener, SmtpListenerSettings

MAIL_DOMAIN = "mail.tidings.test"
BOUNCE_DOMAIN = "bounces.tidings.test"
OURS = "msg_01abc@mail.tidings.test"
SUPPORT = "support@tenant.example"


@dataclass
class Sinks:
    """The pipeline's side: records what it was offered and answers as told."""

    reports: list[tuple[str, DeliveryReport]] = field(default_factory=list)
    inbound: list[tuple[str, InboundMessage]] = field(default_factory=list)
    answer: bool = True
    fail: bool = False

    async def take_reports(self, connector: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        return self._take(connector, reports, self.reports)

    async def take_inbound(self, connector: str,
                           messages: Sequence[InboundMessage]) -> list[bool]:
        return self._take(connector, messages, self.inbound)

    def _take(self, connector: str, items: Sequence[Any], into: list[Any]) -> list[bool]:
        if self.fail:
            raise RuntimeError("database is down")
        if self.answer:
            into.extend((connector, item) for item in items)
        return [self.answer] * len(items)


@pytest.fixture
def sinks() -> Sinks:
    return Sinks()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def start_listener(sinks: Sinks) -> AsyncIterator[Callable[..., Any]]:
    """``await start_listener(**settings)`` -> a running listener on a free port."""
    started: list[SmtpListener] = []

    async def start(**settings: Any) -> SmtpListener:
        listener = SmtpListener(SmtpListenerSettings(port=0, hostname="mx.tidings.test",
                                                     **settings),
                                connector_name="smtp-main", mail_domain=MAIL_DOMAIN,
                                bounce_domain=BOUNCE_DOMAIN)
        await listener.start(sinks.take_reports, sinks.take_inbound)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop()


async def send(port: int | None, raw: bytes, *, sender: str = "alice@example.com",
               recipients: Sequence[str] = (SUPPORT,), **options: Any) -> str:
    """Send one mail like an MTA would (``sender=""`` is the null sender of a bounce);
    returns the server's answer to DATA."""
    assert port is not None
    options.setdefault("start_tls", False)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="mta.example.com",
                               timeout=5, **options) as client:
        await client.mail(sender)
        for recipient in recipients:
            await client.rcpt(recipient)
        return (await client.data(raw)).message


# --- inbound -------------------------------------------------------------------------------


async def test_an_inbound_mail_reaches_the_inbound_sink(start_listener: Any,
                                                        sinks: Sinks) -> None:
    listener = await start_listener()
    answer = await send(listener.port, a_mail(body="Where is my order?"))
    assert answer.startswith("2.0.0 OK")
    assert sinks.inbound == [("smtp-main", InboundMessage(
        "email", "alice@example.com", SUPPORT, "Where is my order?\n"))]
    assert sinks.reports == []


async def test_each_recipient_gets_its_inbound_message(start_listener: Any,
                                                       sinks: Sinks) -> None:
    listener = await start_listener()
    await send(listener.port, a_mail(), recipients=[SUPPORT, "sales@tenant.example"])
    assert [m.to for _, m in sinks.inbound] == [SUPPORT, "sales@tenant.example"]


async def test_a_refused_inbound_mail_gets_a_451(start_listener: Any, sinks: Sinks) -> None:
    listener = await start_listener()
    sinks.answer = False
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(listener.port, a_mail())
    assert (refused.value.code, refused.value.message) == (451, "4.3.0 try again later")


async def test_a_failing_sink_gets_a_451_and_the_listener_goes_on(start_listener: Any,
                                                                  sinks: Sinks) -> None:
    listener = await start_listener()
    sinks.fail = True
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(listener.port, a_mail())
    assert refused.value.code == 451
    sinks.fail = False
    await send(listener.port, a_mail())
    assert len(sinks.inbound) == 1


# --- bounces -------------------------------------------------------------------------------


async def test_a_dsn_reaches_the_report_sink(start_listener: Any, sinks: Sinks) -> None:
    listener = await start_listener()
    await send(listener.port, a_dsn(OURS), sender="", recipients=["alice@example.com"])
    assert sinks.reports == [("smtp-main", DeliveryReport(OURS, "undelivered",
                                                          "smtp_dsn:5.1.1"))]
    assert sinks.inbound == []


async def test_a_dsn_to_a_verp_address_names_the_message(start_listener: Any,
                                                         sinks: Sinks) -> None:
    listener = await start_listener()
    await send(listener.port, a_dsn(None), sender="",
               recipients=["bounces+msg_02xyz@bounces.tidings.test"])
    assert sinks.reports == [("smtp-main", DeliveryReport(
        "msg_02xyz@mail.tidings.test", "undelivered", "smtp_dsn:5.1.1"))]


async def test_a_refused_report_gets_a_451(start_listener: Any, sinks: Sinks) -> None:
    listener = await start_listener()
    sinks.answer = False  # its submit is not recorded yet: the MTA brings it again later
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(listener.port, a_dsn(OURS), sender="")
    assert refused.value.code == 451


async def test_a_bounce_of_a_mail_not_ours_is_dropped(start_listener: Any,
                                                      sinks: Sinks) -> None:
    listener = await start_listener()
    await send(listener.port, a_dsn("abc@elsewhere.example"), sender="")
    assert (sinks.reports, sinks.inbound, listener.unmatched_bounces) == ([], [], 1)


async def test_a_delay_notice_is_acknowledged_and_not_reported(start_listener: Any,
                                                               sinks: Sinks) -> None:
    listener = await start_listener()
    await send(listener.port, a_dsn(OURS, action="delayed", status="4.4.7"), sender="")
    assert sinks.reports == []


async def test_an_auto_reply_to_a_bounce_address_is_dropped(start_listener: Any,
                                                            sinks: Sinks) -> None:
    listener = await start_listener()
    await send(listener.port, a_mail(subject="Out of office"), sender="",
               recipients=["bounces+msg_1@bounces.tidings.test"])
    assert (sinks.reports, sinks.inbound) == ([], [])


# --- limits and garbage ----------------------------------------------------------------------


async def test_an_oversized_mail_declared_with_size_gets_552(start_listener: Any,
                                                             sinks: Sinks) -> None:
    listener = await start_listener(max_message_bytes=1000)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port,
                               local_hostname="mta.example.com", start_tls=False) as client:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail("alice@example.com", options=["SIZE=2000"])
    assert refused.value.code == 552
    assert sinks.inbound == []


async def test_an_oversized_mail_without_size_gets_552_after_data(start_listener: Any,
                                                                  sinks: Sinks) -> None:
    listener = await start_listener(max_message_bytes=1000)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port,
                               local_hostname="mta.example.com", start_tls=False) as client:
        await client.mail("alice@example.com")
        await client.rcpt(SUPPORT)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.data(a_mail(body="x" * 2000))
        assert refused.value.code == 552
        await client.mail("alice@example.com")  # the session goes on
        await client.rcpt(SUPPORT)
        await client.data(a_mail())
    assert len(sinks.inbound) == 1


async def test_too_many_recipients_get_452(start_listener: Any, sinks: Sinks) -> None:
    listener = await start_listener(max_recipients=2)
    recipients = [f"r{n}@tenant.example" for n in range(3)]
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port,
                               local_hostname="mta.example.com", start_tls=False) as client:
        await client.mail("alice@example.com")
        await client.rcpt(recipients[0])
        await client.rcpt(recipients[1])
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt(recipients[2])
        assert (refused.value.code, refused.value.message) == (452, "4.5.3 Too many recipients")
        await client.data(a_mail())
    assert [m.to for _, m in sinks.inbound] == recipients[:2]  # the MTA sends r2 again later


async def test_garbage_data_does_not_crash_the_listener(start_listener: Any,
                                                        sinks: Sinks) -> None:
    listener = await start_listener()
    garbage = os.urandom(3000).replace(b"\r", b"").replace(b"\n", b"\r\n")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port,
                               local_hostname="mta.example.com", start_tls=False) as client:
        answers = []
        for raw in (garbage, b"\x00\xff\xfe" * 100, b"Content-Type: multipart/report\r\n\r\n--"):
            await client.mail("alice@example.com")
            await client.rcpt(SUPPORT)
            try:
                answers.append((await client.data(raw)).code)
            except aiosmtplib.SMTPDataError as exc:
                answers.append(exc.code)
        await client.mail("alice@example.com")
        await client.rcpt(SUPPORT)
        await client.data(a_mail(body="still here"))
    assert set(answers) <= {250, 500, 554}  # taken, a line too long, or unreadable
    assert sinks.inbound[-1][1].body == "still here\n"


async def test_starttls_is_offered_with_a_certificate(start_listener: Any, sinks: Sinks,
                                                      certificate: Certificate) -> None:
    listener = await start_listener(tls_certificate_file=certificate.cert_file,
                                    tls_key_file=certificate.key_file)
    await send(listener.port, a_mail(), start_tls=True, tls_context=certificate.client_context())
    assert len(sinks.inbound) == 1


async def test_addresses_stay_out_of_the_logs(start_listener: Any, sinks: Sinks,
                                              caplog: pytest.LogCaptureFixture,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    listener = await start_listener()
    await send(listener.port, a_mail())
    sinks.fail = True
    with pytest.raises(aiosmtplib.SMTPDataError):
        await send(listener.port, a_mail())
    printed = capsys.readouterr()
    logged = [r.getMessage() for r in caplog.records] + [printed.out, printed.err]
    assert not [line for line in logged if "alice@" in line or SUPPORT in line]


async def test_stop_closes_the_port_and_open_sessions(start_listener: Any) -> None:
    listener = await start_listener()
    port = listener.port
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="mta.example.com",
                             start_tls=False)
    await client.connect()
    await listener.stop()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await send(port, a_mail())


# --- run by the connector --------------------------------------------------------------------


async def test_the_connector_runs_a_listener_under_its_own_name(sinks: Sinks) -> None:
    settings = SmtpSettings(host="127.0.0.1", mail_domain=MAIL_DOMAIN, security="none",
                            bounce_domain=BOUNCE_DOMAIN,
                            listener=SmtpListenerSettings(port=0, hostname="mx.tidings.test"))
    connector = SmtpConnector("smtp-eu", settings)
    await connector.start(sinks.take_reports, sinks.take_inbound)
    try:
        await send(connector.listener_port, a_dsn(OURS), sender="")
        await send(connector.listener_port, a_mail())
    finally:
        await connector.stop()
    assert sinks.reports == [("smtp-eu", DeliveryReport(OURS, "undelivered", "smtp_dsn:5.1.1"))]
    assert [name for name, _ in sinks.inbound] == ["smtp-eu"]
    assert connector.listener_port is None
