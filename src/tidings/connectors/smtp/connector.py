"""The SMTP connector: email out through a relay (your MTA, or a provider's smarthost).

* Each message becomes one mail: ``From`` the message's sender (``default_from`` when it
  has none), ``To`` its recipient, ``Subject`` and optional HTML from its
  ``EmailContent``; with HTML it is ``multipart/alternative`` (text, then HTML).
* ``Message-ID: <{message_id}@{mail_domain}>``; the carrier id is the same without the
  angle brackets, so bounces and replies that quote it find the message.
* With a ``bounce_domain`` the envelope sender is ``bounces+{message_id}@{bounce_domain}``
  (VERP): bounces come to our listener and name the message even if they quote nothing.
  Without one it is the From address, and bounces go to the sender's mailbox.
* ``concurrency`` connections are opened on first use and kept; a connection the relay
  dropped while idle is opened again without failing the message.
* Outcomes (error codes in ``error_code``):
    - relay unreachable, not greeting, or dropping us before MAIL: ``retry`` with
      ``UNAVAILABLE``, so the router tries the next connector at once;
    - STARTTLS/TLS failure: ``retry`` ``smtp_tls_failed``; bad credentials or no AUTH
      offered: ``retry`` ``smtp_auth_failed``; a 530 reply: ``retry``
      ``smtp_auth_required``. These are the operator's to fix; the messages wait;
    - a 4xx reply: ``retry`` ``smtp_4xx:<code>``; a 5xx reply to MAIL, RCPT or DATA:
      ``rejected`` ``smtp_5xx:<code>``; a reply out of place: ``retry``
      ``smtp_reply:<code>``;
    - connection lost or timed out during the transaction: ``retry``
      ``smtp_connection_lost`` / ``smtp_timeout``. SMTP cannot tell whether the relay
      took a mail whose DATA answer was lost, so that mail may go out twice;
    - CR, LF or other control characters in the subject or an address (header
      injection): ``rejected`` ``smtp_invalid_header``, nothing sent; an address that
      is not one bare addr-spec: ``smtp_invalid_address``; non-email content:
      ``smtp_invalid_content``; a non-ASCII address and a relay without SMTPUTF8:
      ``smtp_utf8_unsupported``;
    - a bug of ours: ``retry`` ``smtp_internal_error`` (logged), not an exception that
      would fail the whole batch.
* Repeated submits of a message id in this process get the first final answer again;
  concurrent ones share one send.
* Logs carry message ids and codes only, never addresses, subjects or bodies.

Bounces and inbound mail arrive through ``listener.SmtpListener``, which the connector
runs when its settings have a ``listener``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import unicodedata
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import AddressHeader, BaseHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

import aiosmtplib

from tidings.connectors.answers import SubmitOnce
from tidings.connectors.base import (
    UNAVAILABLE,
    EmailContent,
    InboundSink,
    OutboundMessage,
    ReportSink,
    SubmitResult,
    refuse_inbound,
)
from tidings.connectors.smtp.bounces import (
    bounce_address,
    carrier_message_id,
    is_safe_message_id,
)
from tidings.connectors.smtp.listener import SmtpListener, SmtpListenerSettings
from tidings.core.logs import get_logger

log = get_logger("tidings.smtp")
QUIT_TIMEOUT_SECONDS = 2.0
_AUTH_REQUIRED = 530
INTERNAL_ERROR = "smtp_internal_error"
# Bodies always in 7-bit transfer encodings (quoted-printable or base64), so no relay
# needs 8BITMIME; headers in UTF-8 only for the mails that need SMTPUTF8 anyway.
_ASCII_MAIL = policy.SMTP.clone(cte_type="7bit")
_UTF8_MAIL = policy.SMTPUTF8.clone(cte_type="7bit")


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the relay, and how our mails name themselves."""

    host: str
    mail_domain: str  # right-hand side of our Message-IDs; our EHLO name
    port: int = 587
    security: Literal["none", "starttls", "tls"] = "starttls"  # "tls": implicit (465)
    username: str | None = None  # AUTH only when set
    password: str = field(default="", repr=False)
    default_from: str | None = None  # From of a message without a sender
    bounce_domain: str | None = None  # VERP envelope senders; see the module docstring
    timeout_seconds: float = 30.0  # per connect and per SMTP command
    concurrency: int = 4  # connections to the relay, each sending one mail at a time
    verify_tls: bool = True
    ca_file: str | None = None  # CA bundle to verify the relay with, instead of the system's
    listener: SmtpListenerSettings | None = None  # receive bounces and inbound mail


class _Retry(Exception):
    def __init__(self, error_code: str) -> None:
        super().__init__(error_code)
        self.error_code = error_code


class _Rejected(Exception):
    def __init__(self, error_code: str) -> None:
        super().__init__(error_code)
        self.error_code = error_code


class _EnvelopeLost(Exception):
    """The connection broke during MAIL or RCPT: nothing of the mail went out."""


# --- the mail ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mail:
    carrier_message_id: str
    envelope_sender: str
    recipient: str
    payload: bytes
    smtputf8: bool


def _build_mail(message: OutboundMessage, settings: SmtpSettings) -> _Mail:
    """The mail for ``message``; raises ``_Rejected`` for what must not be sent."""
    content = _email_content(message)
    from_address, to_address = _addresses(message, settings, content)
    envelope_sender = (bounce_address(message.message_id, settings.bounce_domain)
                       if settings.bounce_domain else from_address)
    smtputf8 = not (from_address + to_address + envelope_sender).isascii()
    carrier_id = carrier_message_id(message.message_id, settings.mail_domain)
    mail = EmailMessage(policy=_UTF8_MAIL if smtputf8 else _ASCII_MAIL)
    mail["From"], mail["To"] = from_address, to_address
    mail["Subject"] = content.subject if content is not None else ""
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{carrier_id}>"
    mail.set_content(message.body)
    if content is not None and content.html:
        mail.add_alternative(content.html, subtype="html")
    return _Mail(carrier_id, envelope_sender, to_address, mail.as_bytes(), smtputf8)


def _email_content(message: OutboundMessage) -> EmailContent | None:
    if message.content is not None and not isinstance(message.content, EmailContent):
        raise _Rejected("smtp_invalid_content")
    return message.content


def _addresses(message: OutboundMessage, settings: SmtpSettings,
               content: EmailContent | None) -> tuple[str, str]:
    """(From, To), once nothing that goes in a header can start a header of its own."""
    sender = message.sender or settings.default_from or ""
    subject = content.subject if content is not None else ""
    if _breaks_header(sender) or _breaks_header(message.to) \
            or _breaks_header(subject, allow_tab=True) \
            or not is_safe_message_id(message.message_id):
        raise _Rejected("smtp_invalid_header")
    return _bare_address(sender), _bare_address(message.to)


def _breaks_header(value: str, *, allow_tab: bool = False) -> bool:
    """Whether ``value`` holds CR, LF or another control or line-separator character."""
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") and not (allow_tab and ch == "\t")
               for ch in value)


def _bare_address(value: str) -> str:
    """``value`` if it is exactly one addr-spec (no display name, no list)."""
    try:
        header = policy.SMTPUTF8.header_factory("To", value)
    except Exception:  # the header parser raises on some malformed input
        raise _Rejected("smtp_invalid_address") from None
    if not (isinstance(header, AddressHeader) and isinstance(header, BaseHeader)) \
            or len(header.addresses) != 1 \
            or any(not isinstance(d, NonASCIILocalPartDefect) for d in header.defects):
        raise _Rejected("smtp_invalid_address")
    address = header.addresses[0]
    if address.display_name or not address.username or not address.domain \
            or address.addr_spec != value:
        raise _Rejected("smtp_invalid_address")
    return value


# --- one connection ---------------------------------------------------------------------


class _Relay:
    """One connection to the relay, opened when first needed and again after it broke."""

    def __init__(self, settings: SmtpSettings, tls: ssl.SSLContext | None) -> None:
        self._settings, self._tls = settings, tls
        self._smtp: aiosmtplib.SMTP | None = None

    async def send(self, mail: _Mail) -> None:
        """Send ``mail``; raises ``_Retry`` or ``_Rejected`` with the relay's answer."""
        try:
            await self._send_reconnecting(mail)
        except asyncio.CancelledError:
            self.close()  # cut off mid-command: the connection's state is unknown
            raise

    async def _send_reconnecting(self, mail: _Mail) -> None:
        reused = self._smtp is not None and self._smtp.is_connected
        try:
            await self._send_once(mail)
            return
        except _EnvelopeLost:
            self.close()
            if not reused:
                raise _Retry(UNAVAILABLE) from None
        # The relay dropped the idle connection: nothing went out, so try a new one.
        try:
            await self._send_once(mail)
        except _EnvelopeLost:
            self.close()
            raise _Retry(UNAVAILABLE) from None

    async def _send_once(self, mail: _Mail) -> None:
        smtp = await self._connection()
        if mail.smtputf8 and not smtp.supports_extension("smtputf8"):
            raise _Rejected("smtp_utf8_unsupported")
        encoding = "utf-8" if mail.smtputf8 else "ascii"
        options = [f"SIZE={len(mail.payload)}"] if smtp.supports_extension("size") else []
        options += ["SMTPUTF8"] if mail.smtputf8 else []
        await _answered(smtp, smtp.mail(mail.envelope_sender, options=options,
                                        encoding=encoding), lost=_EnvelopeLost)
        await _answered(smtp, smtp.rcpt(mail.recipient, encoding=encoding), lost=_EnvelopeLost)
        await _answered(smtp, smtp.data(mail.payload), lost=None)

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            self._smtp = await self._open()
        return self._smtp

    async def _open(self) -> aiosmtplib.SMTP:
        settings = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=settings.host, port=settings.port, local_hostname=settings.mail_domain,
            timeout=settings.timeout_seconds, use_tls=settings.security == "tls",
            start_tls=False, tls_context=self._tls)
        try:
            await _connected(smtp)
            await _guarded(smtp.ehlo(), failure=UNAVAILABLE)
            if settings.security == "starttls":
                await _guarded(smtp.starttls(), failure="smtp_tls_failed")
            if settings.username:
                await _guarded(smtp.login(settings.username, settings.password),
                               failure="smtp_auth_failed")
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def quit(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit(timeout=QUIT_TIMEOUT_SECONDS)
        smtp.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


async def _connected(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.connect()
    except aiosmtplib.SMTPConnectError as exc:
        tls_failed = isinstance(exc.__cause__, ssl.SSLError)
        raise _Retry("smtp_tls_failed" if tls_failed else UNAVAILABLE) from None
    except (aiosmtplib.SMTPException, OSError):
        raise _Retry(UNAVAILABLE) from None


async def _guarded(step: Awaitable[object], *, failure: str) -> None:
    """Run a connection step (STARTTLS, AUTH); a refusal is ``failure``, a loss unavailable."""
    try:
        await step
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        raise _Retry(UNAVAILABLE) from None
    except (aiosmtplib.SMTPException, ssl.SSLError):
        raise _Retry(failure) from None


async def _answered(smtp: aiosmtplib.SMTP, command: Awaitable[object], *,
                    lost: type[Exception] | None) -> None:
    """Run one transaction command; turn the relay's refusal into ``_Retry``/``_Rejected``.

    A lost connection raises ``lost`` when given (nothing went out yet), else ``_Retry``.
    """
    try:
        await command
    except aiosmtplib.SMTPHeloError:  # EHLO again after a reset, refused: the relay's state
        smtp.close()
        raise _Retry(UNAVAILABLE) from None
    except aiosmtplib.SMTPResponseException as exc:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.rset()  # leave the connection ready for the next mail
        raise _refusal(exc.code) from None
    except aiosmtplib.SMTPTimeoutError:
        smtp.close()
        raise _Retry("smtp_timeout") from None
    except (aiosmtplib.SMTPException, OSError):  # disconnected, or the socket failed
        smtp.close()
        raise (lost() if lost is not None else _Retry("smtp_connection_lost")) from None


def _refusal(code: int) -> Exception:
    if code == _AUTH_REQUIRED:
        return _Retry("smtp_auth_required")
    if 400 <= code < 500:
        return _Retry(f"smtp_4xx:{code}")
    if 500 <= code < 600:
        return _Rejected(f"smtp_5xx:{code}")
    return _Retry(f"smtp_reply:{code}")  # an answer out of place: try again later


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.security == "none":
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# --- the connector ------------------------------------------------------------------------


class SmtpConnector:
    """Email through an SMTP relay; bounces and inbound mail through an optional listener."""

    channels = frozenset({"email"})

    def __init__(self, name: str, settings: SmtpSettings) -> None:
        self.name, self.settings = name, settings
        tls = _tls_context(settings)
        self._relays = [_Relay(settings, tls) for _ in range(max(1, settings.concurrency))]
        self._idle: asyncio.Queue[_Relay] = asyncio.Queue()
        for relay in self._relays:
            self._idle.put_nowait(relay)
        self._once = SubmitOnce()
        self._listener: SmtpListener | None = None

    @property
    def listener_port(self) -> int | None:
        """The port the listener took (useful with port 0), or None if none runs."""
        return self._listener.port if self._listener is not None else None

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None:
        """Start the listener, if configured; relay connections open on first submit."""
        if self.settings.listener is not None and self._listener is None:
            listener = SmtpListener(self.settings.listener, connector_name=self.name,
                                    mail_domain=self.settings.mail_domain,
                                    bounce_domain=self.settings.bounce_domain)
            await listener.start(sink, inbound)
            self._listener = listener

    async def stop(self) -> None:
        """Cancel the sends in flight, say QUIT to the relay, stop the listener."""
        self._once.cancel_running()
        await self._once.wait_running()
        await asyncio.gather(*(relay.quit() for relay in self._relays))
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        """Nothing is held here: a bounce the sink refused was answered 451, and the
        sending MTA offers it again later."""

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        """Results in input order; never raises for the relay's answer."""
        return list(await asyncio.gather(*(
            self._once.run(m.message_id, functools.partial(self._submit, m))
            for m in messages)))

    async def _submit(self, message: OutboundMessage) -> SubmitResult:
        try:
            mail = _build_mail(message, self.settings)
            await self._send(mail)
        except _Rejected as exc:
            log.info("smtp_rejected", connector=self.name, message_id=message.message_id,
                     error_code=exc.error_code)
            return SubmitResult(message.message_id, "rejected", error_code=exc.error_code)
        except _Retry as exc:
            log.warning("smtp_retry", connector=self.name, message_id=message.message_id,
                        error_code=exc.error_code)
            return SubmitResult(message.message_id, "retry", error_code=exc.error_code)
        except Exception as exc:  # a bug must not sink the other messages of the batch
            # The exception's text may quote an address: log its type only.
            log.error("smtp_submit_failed", connector=self.name, message_id=message.message_id,
                      error=type(exc).__name__)
            return SubmitResult(message.message_id, "retry", error_code=INTERNAL_ERROR)
        return SubmitResult(message.message_id, "accepted",
                            carrier_message_id=mail.carrier_message_id)

    async def _send(self, mail: _Mail) -> None:
        relay = await self._idle.get()
        try:
            await relay.send(mail)
        finally:
            self._idle.put_nowait(relay)
