"""The SMTP connector against a real aiosmtpd relay on loopback: plain, STARTTLS and
implicit TLS, AUTH, the relay's refusals, broken connections, idempotency."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tidings.connectors.base import (
    UNAVAILABLE,
    EmailContent,
    OutboundMessage,
    SubmitResult,
    WhatsAppContent,
)
from tidings.connectors.smtp.connector import SmtpConnector, SmtpSettings

MAIL_DOMAIN = "mail.tidings.test"


# --- a certificate, a relay ----------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert_file: str
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert_file)


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, written into ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Certificate(str(cert_file), str(key_file))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    connection: int  # which connection brought it
    tls: bool
    login: bytes | None

    def mail(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingRelay:
    """aiosmtpd's hooks: record each mail, or answer as the test says."""

    received: list[Received] = field(default_factory=list)
    rcpt_answer: str | None = None
    data_answers: list[str] = field(default_factory=list)  # next DATA answers, in order
    drop_mails: int = 0  # how many MAIL commands to answer by closing the connection
    drop_next_data: bool = False
    data_delay_seconds: float = 0.0
    sessions: list[SMTP] = field(default_factory=list)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.drop_mails:
            self.drop_mails -= 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_answer is not None:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.drop_next_data:
            self.drop_next_data = False
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "250 OK"  # never reaches the client
        if self.data_answers:
            return self.data_answers.pop(0)
        await asyncio.sleep(self.data_delay_seconds)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(
            envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"",
            id(session), server.transport is not None and
            server.transport.get_extra_info("sslcontext") is not None, login))
        return "250 2.0.0 queued as 1"

    def drop_connections(self) -> None:
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()


def check_password(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and auth_data == (b"user", b"secret")
    return AuthResult(success=good, handled=False, auth_data=auth_data)


@pytest.fixture
async def start_relay() -> AsyncIterator[Callable[..., Any]]:
    """Start aiosmtpd relays on loopback: ``await start_relay(**smtp_options)``."""
    servers: list[tuple[asyncio.Server, RecordingRelay]] = []

    async def start(*, implicit_tls: ssl.SSLContext | None = None,
                    **options: Any) -> tuple[RecordingRelay, int]:
        relay = RecordingRelay()
        loop = asyncio.get_running_loop()

        def session() -> SMTP:
            smtp = SMTP(relay, hostname="relay.test", loop=loop, **options)
            relay.sessions.append(smtp)
            return smtp

        server = await loop.create_server(session, "127.0.0.1", 0, ssl=implicit_tls)
        servers.append((server, relay))
        return relay, int(server.sockets[0].getsockname()[1])

    yield start
    for server, relay in servers:
        server.close()
        relay.drop_connections()
        await server.wait_closed()


@pytest.fixture
async def connectors() -> AsyncIterator[Callable[..., SmtpConnector]]:
    """Build started-on-demand connectors that are stopped after the test."""
    built: list[SmtpConnector] = []

    def build(port: int, **overrides: Any) -> SmtpConnector:
        settings = SmtpSettings(host="127.0.0.1", port=port, mail_domain=MAIL_DOMAIN,
                                security="none", timeout_seconds=2.0)
        connector = SmtpConnector("smtp-main", replace(settings, **overrides))
        built.append(connector)
        return connector

    yield build
    for connector in built:
        await connector.stop()


def an_email(message_id: str = "msg_1", *, to: str = "bob@example.net",
             sender: str = "alice@example.com", body: str = "Hello Bob",
             subject: str = "Hi", html: str | None = None) -> OutboundMessage:
    return OutboundMessage(message_id, "email", to, sender, body, "utf-8", 1,
                           EmailContent(subject, html))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepted(message_id: str = "msg_1") -> SubmitResult:
    return SubmitResult(message_id, "accepted", carrier_message_id=f"{message_id}@{MAIL_DOMAIN}")


def retry(code: str, message_id: str = "msg_1") -> SubmitResult:
    return SubmitResult(message_id, "retry", error_code=code)


def rejected(code: str, message_id: str = "msg_1") -> SubmitResult:
    return SubmitResult(message_id, "rejected", error_code=code)


# --- what goes out ------------------------------------------------------------------------


async def test_a_text_mail_goes_out_with_exact_headers(start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    assert await connectors(port).submit([an_email()]) == [accepted()]
    [received] = relay.received
    assert (received.mail_from, received.rcpt_tos) == ("alice@example.com", ["bob@example.net"])
    mail = received.mail()
    assert mail.keys() == ["From", "To", "Subject", "Date", "Message-ID", "Content-Type",
                           "Content-Transfer-Encoding", "MIME-Version"]
    assert (mail["From"], mail["To"], mail["Subject"]) == (
        "alice@example.com", "bob@example.net", "Hi")
    assert mail["Message-ID"] == "<msg_1@mail.tidings.test>"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content() == "Hello Bob\r\n"  # as on the wire
    assert mail["Date"].datetime.tzinfo is not None


async def test_html_makes_a_multipart_alternative(start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    message = an_email(body="Hello Bob", html="<p>Hello <b>Bob</b></p>", subject="Grüße")
    assert await connectors(port).submit([message]) == [accepted()]
    mail = relay.received[0].mail()
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.iter_parts()
    assert (text.get_content_type(), text.get_content()) == ("text/plain", "Hello Bob\r\n")
    assert (html.get_content_type(), html.get_content()) == (
        "text/html", "<p>Hello <b>Bob</b></p>\r\n")
    assert mail["Subject"] == "Grüße"
    assert relay.received[0].content.isascii()  # 7-bit: no 8BITMIME needed


async def test_a_bounce_domain_makes_the_envelope_sender_verp(start_relay: Any,
                                                              connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port, bounce_domain="bounces.tidings.test")
    assert await connector.submit([an_email("msg_7")]) == [accepted("msg_7")]
    assert relay.received[0].mail_from == "bounces+msg_7@bounces.tidings.test"
    assert relay.received[0].mail()["From"] == "alice@example.com"


async def test_default_from_when_the_message_has_no_sender(start_relay: Any,
                                                           connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port, default_from="noreply@tenant.example")
    assert await connector.submit([an_email(sender="")]) == [accepted()]
    assert relay.received[0].mail()["From"] == "noreply@tenant.example"


async def test_non_ascii_addresses_use_smtputf8(start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay(enable_SMTPUTF8=True)
    assert await connectors(port).submit([an_email(to="jürgen@bücher.example")]) == [accepted()]
    assert relay.received[0].rcpt_tos == ["jürgen@bücher.example"]
    assert relay.received[0].mail()["To"] == "jürgen@bücher.example"


async def test_non_ascii_addresses_without_smtputf8_are_rejected(start_relay: Any,
                                                                 connectors: Any) -> None:
    relay, port = await start_relay()
    result = await connectors(port).submit([an_email(to="jürgen@bücher.example")])
    assert result == [rejected("smtp_utf8_unsupported")]
    assert relay.received == []


@pytest.mark.parametrize("message", [
    an_email(subject="Hi\r\nBcc: eve@evil.example"),
    an_email(subject="Hi\nX-Injected: 1"),
    an_email(subject="Hi\u2028there"),
    an_email(to="bob@example.net\r\nBcc: eve@evil.example"),
    an_email(sender="alice@example.com\nBcc: eve@evil.example"),
    an_email("msg_1>\r\nBcc: eve@evil.example"),
], ids=["subject-crlf", "subject-lf", "subject-line-separator", "to", "sender", "message-id"])
async def test_header_injection_is_refused_without_sending(
        start_relay: Any, connectors: Any, message: OutboundMessage) -> None:
    relay, port = await start_relay()
    [result] = await connectors(port).submit([message])
    assert (result.outcome, result.error_code) == ("rejected", "smtp_invalid_header")
    assert relay.sessions == []  # not even connected


@pytest.mark.parametrize("to", ["Bob <bob@example.net>", "bob@example.net, eve@evil.example",
                                "nobody", "", "<bob@example.net>"])
async def test_anything_but_one_bare_address_is_rejected(start_relay: Any, connectors: Any,
                                                        to: str) -> None:
    relay, port = await start_relay()
    assert await connectors(port).submit([an_email(to=to)]) == [
        rejected("smtp_invalid_address")]
    assert relay.sessions == []


async def test_non_email_content_is_rejected(start_relay: Any, connectors: Any) -> None:
    _, port = await start_relay()
    message = replace(an_email(), content=WhatsAppContent("template", template_name="x"))
    assert await connectors(port).submit([message]) == [rejected("smtp_invalid_content")]


# --- security and AUTH ----------------------------------------------------------------------


async def test_starttls_with_auth(start_relay: Any, connectors: Any,
                                  certificate: Certificate) -> None:
    relay, port = await start_relay(tls_context=certificate.server_context(),
                                    require_starttls=True, auth_required=True,
                                    authenticator=check_password)
    connector = connectors(port, security="starttls", ca_file=certificate.cert_file,
                           username="user", password="secret")
    assert await connector.submit([an_email()]) == [accepted()]
    assert (relay.received[0].tls, relay.received[0].login) == (True, b"user")


async def test_implicit_tls_with_auth(start_relay: Any, connectors: Any,
                                      certificate: Certificate) -> None:
    relay, port = await start_relay(implicit_tls=certificate.server_context(),
                                    auth_require_tls=False, authenticator=check_password)
    connector = connectors(port, security="tls", ca_file=certificate.cert_file,
                           username="user", password="secret")
    assert await connector.submit([an_email()]) == [accepted()]
    assert (relay.received[0].tls, relay.received[0].login) == (True, b"user")


async def test_bad_credentials_are_a_retry_for_the_operator(
        start_relay: Any, connectors: Any, certificate: Certificate) -> None:
    relay, port = await start_relay(tls_context=certificate.server_context(),
                                    auth_required=True, authenticator=check_password)
    connector = connectors(port, security="starttls", ca_file=certificate.cert_file,
                           username="user", password="wrong")
    assert await connector.submit([an_email()]) == [retry("smtp_auth_failed")]
    assert relay.received == []
    # Not remembered: fixed credentials (a new connector) send it.
    fixed = connectors(port, security="starttls", ca_file=certificate.cert_file,
                       username="user", password="secret")
    assert await fixed.submit([an_email()]) == [accepted()]


async def test_a_relay_without_auth_is_auth_failed(start_relay: Any, connectors: Any) -> None:
    _, port = await start_relay()
    connector = connectors(port, username="user", password="secret")
    assert await connector.submit([an_email()]) == [retry("smtp_auth_failed")]


@pytest.mark.parametrize(("security", "tls_option"), [("starttls", "tls_context"),
                                                     ("tls", "implicit_tls")])
async def test_an_untrusted_certificate_is_a_tls_failure(
        start_relay: Any, connectors: Any, certificate: Certificate, security: str,
        tls_option: str) -> None:
    relay, port = await start_relay(**{tls_option: certificate.server_context()})
    assert await connectors(port, security=security).submit([an_email()]) == [
        retry("smtp_tls_failed")]
    unverified = connectors(port, security=security, verify_tls=False)
    assert await unverified.submit([an_email()]) == [accepted()]
    assert relay.received[0].tls


async def test_starttls_not_offered_is_a_tls_failure(start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    assert await connectors(port, security="starttls").submit([an_email()]) == [
        retry("smtp_tls_failed")]
    assert relay.received == []


async def test_plain_text_to_a_relay_that_requires_starttls(
        start_relay: Any, connectors: Any, certificate: Certificate) -> None:
    _, port = await start_relay(tls_context=certificate.server_context(), require_starttls=True)
    assert await connectors(port).submit([an_email()]) == [retry("smtp_auth_required")]


def test_the_password_is_not_in_the_settings_repr() -> None:
    settings = SmtpSettings(host="relay", mail_domain=MAIL_DOMAIN, password="hunter2")
    assert "hunter2" not in repr(settings)


# --- the relay's answers and failures ------------------------------------------------------


async def test_a_relay_that_is_down_is_unavailable(connectors: Any) -> None:
    assert await connectors(closed_port()).submit([an_email()]) == [retry(UNAVAILABLE)]


async def test_a_relay_that_never_greets_is_unavailable(connectors: Any) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        connector = connectors(server.sockets[0].getsockname()[1], timeout_seconds=0.2)
        assert await connector.submit([an_email()]) == [retry(UNAVAILABLE)]
    finally:
        server.close()
        await connector.stop()
        await server.wait_closed()


async def test_a_4xx_is_a_retry_and_the_connection_goes_on(start_relay: Any,
                                                           connectors: Any) -> None:
    relay, port = await start_relay()
    relay.data_answers.append("451 4.3.0 busy, try later")
    connector = connectors(port, concurrency=1)
    assert await connector.submit([an_email()]) == [retry("smtp_4xx:451")]
    assert await connector.submit([an_email()]) == [accepted()]
    assert len(relay.sessions) == 1


async def test_a_5xx_on_rcpt_is_rejected(start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    relay.rcpt_answer = "550 5.1.1 no such user"
    assert await connectors(port).submit([an_email()]) == [rejected("smtp_5xx:550")]


async def test_a_5xx_on_data_is_rejected_and_remembered(start_relay: Any,
                                                        connectors: Any) -> None:
    relay, port = await start_relay()
    relay.data_answers.append("554 5.7.1 spam")
    connector = connectors(port)
    assert await connector.submit([an_email()]) == [rejected("smtp_5xx:554")]
    assert await connector.submit([an_email()]) == [rejected("smtp_5xx:554")]
    assert relay.received == []


async def test_a_connection_dropped_during_data_is_a_retry_then_recovers(
        start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    relay.drop_next_data = True
    connector = connectors(port, concurrency=1)
    assert await connector.submit([an_email()]) == [retry("smtp_connection_lost")]
    assert await connector.submit([an_email()]) == [accepted()]
    assert len(relay.received) == 1


async def test_a_relay_that_does_not_answer_data_in_time_is_a_retry(
        start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    relay.data_delay_seconds = 1.0
    connector = connectors(port, timeout_seconds=0.2, concurrency=1)
    assert await connector.submit([an_email()]) == [retry("smtp_timeout")]
    relay.data_delay_seconds = 0.0
    assert await connector.submit([an_email("msg_2")]) == [accepted("msg_2")]


async def test_a_kept_connection_that_breaks_at_mail_is_opened_again_once(
        start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port, concurrency=1)
    assert await connector.submit([an_email("msg_1")]) == [accepted("msg_1")]
    relay.drop_mails = 1  # the relay forgot the connection; we learn it at MAIL
    assert await connector.submit([an_email("msg_2")]) == [accepted("msg_2")]
    relay.drop_mails = 2  # and again on the new connection: the relay is in trouble
    assert await connector.submit([an_email("msg_3")]) == [retry(UNAVAILABLE, "msg_3")]
    assert [r.mail().get("Message-ID") for r in relay.received] == [
        "<msg_1@mail.tidings.test>", "<msg_2@mail.tidings.test>"]


async def test_an_idle_connection_the_relay_dropped_is_opened_again(
        start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port, concurrency=1)
    assert await connector.submit([an_email("msg_1")]) == [accepted("msg_1")]
    relay.drop_connections()
    await asyncio.sleep(0.01)
    assert await connector.submit([an_email("msg_2")]) == [accepted("msg_2")]
    assert len({r.connection for r in relay.received}) == 2


# --- idempotency and connections -------------------------------------------------------------


async def test_the_same_message_id_sends_one_mail(start_relay: Any, connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port)
    first = await connector.submit([an_email(), an_email()])
    again = await connector.submit([an_email(body="changed")])
    assert first == [accepted(), accepted()]
    assert again == [accepted()]
    assert len(relay.received) == 1


async def test_connections_are_reused_up_to_the_concurrency(start_relay: Any,
                                                            connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port, concurrency=2)
    ids = [f"msg_{n}" for n in range(6)]
    assert await connector.submit([an_email(i) for i in ids]) == [accepted(i) for i in ids]
    assert await connector.submit([an_email("msg_6")]) == [accepted("msg_6")]
    assert len(relay.received) == 7
    assert len(relay.sessions) == 2


async def test_stop_says_quit_and_a_later_submit_reconnects(start_relay: Any,
                                                            connectors: Any) -> None:
    relay, port = await start_relay()
    connector = connectors(port, concurrency=1)
    assert await connector.submit([an_email("msg_1")]) == [accepted("msg_1")]
    await connector.stop()
    assert await connector.submit([an_email("msg_2")]) == [accepted("msg_2")]
    assert len(relay.sessions) == 2


async def test_recorded_holds_nothing(connectors: Any) -> None:
    connector = connectors(closed_port())
    connector.recorded(["msg_1@mail.tidings.test"])  # bounces wait at the sending MTA
