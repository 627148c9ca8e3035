"""Reading received mail: DSNs, plain bounces, inbound messages; never raising on garbage."""

from __future__ import annotations

from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.base import InboundMessage
from tidings.connectors.smtp.bounces import (
    BOUNCE_NO_STATUS,
    Bounce,
    bounce_address,
    carrier_message_id,
    html_to_text,
    match_bounce,
    message_id_from_bounce_address,
    parse,
)

MAIL_DOMAIN = "mail.tidings.test"
BOUNCE_DOMAIN = "bounces.tidings.test"
OURS = "msg_01abc@mail.tidings.test"


def a_dsn(original_message_id: str | None = OURS, *, action: str = "failed",
          status: str = "5.1.1", original_as: str = "message") -> bytes:
    """A DSN as an MTA sends one (RFC 3464), built with email.mime."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.example.net"
    report["To"] = "alice@example.com"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-ID"] = "<dsn-1@mx.example.net>"
    report.attach(MIMEText("Your message could not be delivered.\n"))
    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = "dns; mx.example.net"
    per_recipient["Final-Recipient"] = "rfc822; bob@example.net"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = f"smtp; 550 {status} no such user"
    delivery_status = MIMEBase("message", "delivery-status")
    delivery_status.set_payload([per_message, per_recipient])
    report.attach(delivery_status)
    if original_message_id is not None:
        original = MIMEText("Hello Bob")
        original["Message-ID"] = f"<{original_message_id}>"
        original["Subject"] = "Hi"
        if original_as == "message":
            report.attach(MIMEMessage(original))
        else:
            headers = "".join(f"{k}: {v}\n" for k, v in original.items())
            report.attach(MIMEText(headers, "rfc822-headers"))
    return report.as_bytes()


def a_mail(*, body: str = "Hello", html: str | None = None, sender: str = "alice@example.com",
           subject: str = "Hi", text: bool = True) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Alice <{sender}>"
    mail["To"] = "support@tenant.example"
    mail["Subject"] = subject
    if text:
        mail.set_content(body)
        if html is not None:
            mail.add_alternative(html, subtype="html")
    elif html is not None:
        mail.set_content(html, subtype="html")
    return mail.as_bytes()


QMAIL_BOUNCE = (
    b"From: MAILER-DAEMON@mx.example.net\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: failure notice\r\n"
    b"Message-ID: <qmail-1@mx.example.net>\r\n"
    b"\r\n"
    b"Hi. This is the qmail-send program at mx.example.net.\r\n"
    b"<bob@example.net>:\r\n"
    b"Remote host said: 550 5.1.1 user unknown\r\n"
    b"\r\n"
    b"--- Below this line is a copy of the message.\r\n"
    b"\r\n"
    b"Message-ID: <msg_01abc@mail.tidings.test>\r\n"
    b"Subject: Hi\r\n"
)


# --- DSNs ---------------------------------------------------------------------------


def test_a_failed_dsn_is_undelivered_with_its_status() -> None:
    assert parse(a_dsn(), envelope_sender="", recipients=["alice@example.com"]) == Bounce(
        OURS, "undelivered", "smtp_dsn:5.1.1")


def test_the_original_id_is_found_in_rfc822_headers_too() -> None:
    bounce = parse(a_dsn(original_as="headers"), envelope_sender="", recipients=["a@b.c"])
    assert bounce == Bounce(OURS, "undelivered", "smtp_dsn:5.1.1")


def test_a_delay_notice_is_not_final() -> None:
    bounce = parse(a_dsn(action="delayed", status="4.4.7"), envelope_sender="",
                   recipients=["a@b.c"])
    assert bounce == Bounce(OURS, None, "smtp_dsn:4.4.7")


def test_a_success_dsn_is_delivered() -> None:
    bounce = parse(a_dsn(action="delivered", status="2.0.0"), envelope_sender="",
                   recipients=["a@b.c"])
    assert bounce == Bounce(OURS, "delivered", None)


def test_a_dsn_that_quotes_nothing_has_no_original() -> None:
    bounce = parse(a_dsn(None), envelope_sender="", recipients=["a@b.c"])
    assert bounce == Bounce(None, "undelivered", "smtp_dsn:5.1.1")


def test_a_dsn_with_an_unreadable_status_is_still_undelivered() -> None:
    bounce = parse(a_dsn(status="bogus"), envelope_sender="", recipients=["a@b.c"])
    assert bounce == Bounce(OURS, "undelivered", BOUNCE_NO_STATUS)


# --- bounces without a DSN ----------------------------------------------------------------


def test_a_mailer_daemon_bounce_is_read_from_its_text() -> None:
    bounce = parse(QMAIL_BOUNCE, envelope_sender="", recipients=["alice@example.com"])
    assert bounce == Bounce(OURS, "undelivered", "smtp_dsn:5.1.1")


def test_a_null_sender_with_a_bounce_subject_is_a_bounce() -> None:
    raw = a_mail(sender="mx@example.net", subject="Delivery Status Notification (Failure)",
                 body="Message-ID: <msg_01abc@mail.tidings.test>\nno such user")
    assert parse(raw, envelope_sender="<>", recipients=["a@b.c"]) == Bounce(
        OURS, "undelivered", BOUNCE_NO_STATUS)


def test_a_delayed_plain_bounce_is_not_final() -> None:
    raw = QMAIL_BOUNCE.replace(b"failure notice", b"Delayed Mail (still being retried)")
    bounce = parse(raw, envelope_sender="", recipients=["a@b.c"])
    assert isinstance(bounce, Bounce)
    assert bounce.status is None


def test_an_auto_reply_with_a_null_sender_is_inbound() -> None:
    raw = a_mail(subject="Out of office", body="Back on Monday.")
    messages = parse(raw, envelope_sender="<>", recipients=["support@tenant.example"])
    assert messages == [InboundMessage("email", "alice@example.com", "support@tenant.example",
                                       "Back on Monday.\n")]


# --- inbound ----------------------------------------------------------------------------


def test_an_inbound_mail_is_one_message_per_recipient() -> None:
    messages = parse(a_mail(body="Hello", html="<p>Hello</p>"),
                     envelope_sender="alice@example.com", recipients=["a@t.example", "b@t.example"])
    assert messages == [InboundMessage("email", "alice@example.com", "a@t.example", "Hello\n"),
                        InboundMessage("email", "alice@example.com", "b@t.example", "Hello\n")]


def test_an_html_only_mail_gives_its_visible_text() -> None:
    html = ("<html><head><title>t</title><style>p {}</style></head><body>"
            "<p>Hello&nbsp;&amp; welcome</p><script>x()</script><div>Bye</div></body></html>")
    messages = parse(a_mail(html=html, text=False), envelope_sender="alice@example.com",
                     recipients=["a@t.example"])
    assert isinstance(messages, list)
    assert messages[0].body == "Hello & welcome\nBye"


def test_without_a_from_header_the_envelope_sender_is_the_sender() -> None:
    raw = b"Subject: hi\r\n\r\nbody\r\n"
    messages = parse(raw, envelope_sender="carol@example.org", recipients=["a@t.example"])
    assert messages == [InboundMessage("email", "carol@example.org", "a@t.example", "body\n")]


def test_utf8_headers_and_undeclared_8bit_text_are_read_as_utf8() -> None:
    raw = ("From: Jürgen <jürgen@bücher.example>\r\n\r\nHallo Jürgen ✓\r\n").encode()
    messages = parse(raw, envelope_sender="x@y.example", recipients=["a@t.example"])
    assert messages == [InboundMessage("email", "jürgen@bücher.example", "a@t.example",
                                       "Hallo Jürgen ✓\n")]


def test_a_declared_charset_is_honoured() -> None:
    raw = ("From: a@b.example\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nHallo J\xfcrgen\r\n").encode("latin-1")
    messages = parse(raw, envelope_sender="", recipients=["a@t.example"])
    assert isinstance(messages, list)
    assert messages[0].body == "Hallo Jürgen\n"


def test_html_to_text_folds_blank_runs() -> None:
    assert html_to_text("<p>  a \n\n b </p><br><br><li>c</li>") == "a\nb\nc"


# --- matching a bounce to our mail ----------------------------------------------------------


def test_a_bounce_quoting_our_message_id_matches_it() -> None:
    bounce = Bounce(OURS, "undelivered", "smtp_dsn:5.1.1")
    assert match_bounce(bounce, recipients=["alice@example.com"], mail_domain=MAIL_DOMAIN,
                        bounce_domain=None) == OURS


def test_a_bounce_of_someone_elses_mail_does_not_match() -> None:
    bounce = Bounce("abc@elsewhere.example", "undelivered", None)
    assert match_bounce(bounce, recipients=["a@b.c"], mail_domain=MAIL_DOMAIN,
                        bounce_domain=BOUNCE_DOMAIN) is None


def test_a_verp_recipient_matches_without_a_quoted_id() -> None:
    recipient = bounce_address("msg_02xyz", BOUNCE_DOMAIN)
    assert recipient == "bounces+msg_02xyz@bounces.tidings.test"
    assert match_bounce(Bounce(None, "undelivered", None), recipients=[recipient],
                        mail_domain=MAIL_DOMAIN, bounce_domain=BOUNCE_DOMAIN
                        ) == carrier_message_id("msg_02xyz", MAIL_DOMAIN)


@pytest.mark.parametrize(("address", "expected"), [
    ("bounces+msg_1@BOUNCES.tidings.test", "msg_1"),
    ("bounces+@bounces.tidings.test", None),
    ("bounces+msg_1@other.example", None),
    ("support@bounces.tidings.test", None),
    ("bounces+a\"b@bounces.tidings.test", None),
])
def test_message_id_from_bounce_address(address: str, expected: str | None) -> None:
    assert message_id_from_bounce_address(address, BOUNCE_DOMAIN) == expected


# --- garbage --------------------------------------------------------------------------------


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    parse(raw, envelope_sender="", recipients=["a@b.c"])


_HEADERISH = st.sampled_from([
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
    b"Content-Type: message/delivery-status\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/plain; charset=bogus-8\r\n", b"Content-Type: text/html\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"From: MAILER-DAEMON@x\r\n", b"From: =?utf-8?q?=FF?= <\r\n", b"Subject: failure notice\r\n",
    b"Message-ID: <a@b>\r\n", b"Action: failed\r\n", b"Status: 5.1.1\r\n", b"\r\n", b"--b\r\n",
    b"--b--\r\n", b"<p>x</p>\r\n", b"=C3=\r\n",
])


@given(st.lists(st.one_of(_HEADERISH, st.binary(max_size=40)), max_size=40))
def test_mail_shaped_garbage_never_raises(pieces: list[bytes]) -> None:
    parse(b"".join(pieces), envelope_sender="<>", recipients=["a@b.c"])
