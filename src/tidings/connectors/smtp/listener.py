"""The SMTP listener: bounces and inbound mail, stored before we answer 250.

aiosmtpd's SMTP protocol served by ``loop.create_server`` on our own event loop (no
thread), so the sinks run where the rest of the connector runs.

* Mail for any recipient is accepted (the pipeline decides who owns an address), up
  to ``max_recipients`` per mail (``452 4.5.3`` beyond: the sender sends the rest in
  another transaction). A mail over ``max_message_bytes`` gets ``552``.
* Each mail is read by ``bounces.parse``:
    - a bounce of one of our mails (a VERP recipient, or a quoted Message-ID on our mail
      domain) becomes one ``DeliveryReport`` for the report sink; a delay notice, or a
      bounce of a mail that is not ours, is acknowledged and dropped;
    - anything else becomes one ``InboundMessage`` per recipient for the inbound sink;
      mail to a VERP bounce address that is no bounce (an auto-reply) is dropped;
    - mail that cannot be read at all gets ``554 5.6.0``.
* ``250`` only once the sink took all of it; a refusal or an error in the sink is
  answered ``451 4.3.0 try again later``, so the sending MTA brings it again later.
  With several recipients some may be stored twice: delivery is at least once.
* aiosmtpd logs envelope addresses at INFO on its ``mail.log`` logger; the listener
  raises that logger to WARNING, since our logs never carry addresses.

The listener has the shape of a connector (``start(sink, inbound)``, ``stop()``) and is
used two ways: ``SmtpConnector`` runs one when ``SmtpSettings.listener`` is set, with
its own name, mail domain and bounce domain; or it runs alone (an MX that only takes
inbound mail, say), built with the name of the connector whose mail it is to match,
because reports are looked up by (connector name, carrier id).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from tidings.connectors.base import (
    DeliveryReport,
    InboundMessage,
    InboundSink,
    ReportSink,
    refuse_inbound,
)
from tidings.connectors.smtp.bounces import (
    Bounce,
    match_bounce,
    message_id_from_bounce_address,
    parse,
)
from tidings.core.logs import get_logger

log = get_logger("tidings.smtp")
OK = "250 2.0.0 OK"
TRY_LATER = "451 4.3.0 try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
UNREADABLE = "554 5.6.0 Message unreadable"
_T = TypeVar("_T")


@dataclass(frozen=True)
class SmtpListenerSettings:
    """Where the listener listens and what it takes."""

    host: str = "127.0.0.1"
    port: int = 25  # 0: any free port (``SmtpListener.port`` tells which)
    hostname: str = "localhost"  # our name in the greeting and the EHLO answer
    max_message_bytes: int = 10 * 1024 * 1024
    max_recipients: int = 100
    tls_certificate_file: str | None = None  # with tls_key_file: offer STARTTLS
    tls_key_file: str | None = None


class SmtpListener:
    """Takes mail over SMTP and hands bounces and inbound messages to the sinks."""

    def __init__(self, settings: SmtpListenerSettings, *, connector_name: str,
                 mail_domain: str, bounce_domain: str | None = None) -> None:
        self.settings = settings
        self.connector_name = connector_name
        self.mail_domain, self.bounce_domain = mail_domain, bounce_domain
        self.port: int | None = None
        self.unmatched_bounces = 0  # bounces acknowledged without a mail of ours to apply to
        self._sink: ReportSink | None = None
        self._inbound: InboundSink = refuse_inbound
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()  # to close at stop

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> int:
        """Listen; returns the port (the one the system chose, with port 0)."""
        self._sink, self._inbound = sink, inbound
        if self._server is not None and self.port is not None:
            return self.port
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        tls = self._tls_context()
        self._server = await loop.create_server(
            lambda: self._session(loop, tls), self.settings.host, self.settings.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and close open sessions (their senders will try again)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await server.wait_closed()
        self.port = None

    def _session(self, loop: asyncio.AbstractEventLoop, tls: ssl.SSLContext | None) -> SMTP:
        session = SMTP(_Handler(self), hostname=self.settings.hostname,
                       data_size_limit=self.settings.max_message_bytes,
                       enable_SMTPUTF8=True, tls_context=tls, loop=loop)
        self._sessions.add(session)
        return session

    def _tls_context(self) -> ssl.SSLContext | None:
        settings = self.settings
        if not settings.tls_certificate_file:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_certificate_file, settings.tls_key_file)
        return context

    # --- what a mail becomes ------------------------------------------------------------

    async def take(self, raw: bytes, *, envelope_sender: str,
                   recipients: Sequence[str]) -> str:
        """Offer one received mail to the sinks; returns the SMTP answer to give."""
        # In a thread: a 10 MiB mail takes a while to parse, and the loop runs the workers.
        reading = await asyncio.to_thread(parse, raw, envelope_sender=envelope_sender,
                                          recipients=recipients)
        if reading is None:
            return UNREADABLE
        if isinstance(reading, Bounce):
            return await self._take_bounce(reading, recipients)
        return await self._take_inbound(reading)

    async def _take_bounce(self, bounce: Bounce, recipients: Sequence[str]) -> str:
        carrier_id = match_bounce(bounce, recipients=recipients, mail_domain=self.mail_domain,
                                  bounce_domain=self.bounce_domain)
        if carrier_id is None:
            self.unmatched_bounces += 1
            log.info("smtp_bounce_unmatched", connector=self.connector_name)
            return OK
        if bounce.status is None:  # a delay notice: nothing final to apply
            return OK
        report = DeliveryReport(carrier_id, bounce.status, bounce.error_code)
        if self._sink is None:
            return TRY_LATER
        return await self._offer(self._sink, [report])

    async def _take_inbound(self, messages: list[InboundMessage]) -> str:
        bounce_domain = self.bounce_domain
        if bounce_domain:
            messages = [m for m in messages
                        if message_id_from_bounce_address(m.to, bounce_domain) is None]
        if not messages:
            return OK
        return await self._offer(self._inbound, messages)

    async def _offer(self, sink: Callable[[str, Sequence[_T]], Awaitable[list[bool]]],
                     items: list[_T]) -> str:
        try:
            taken = await sink(self.connector_name, items)
        except Exception as exc:
            log.warning("smtp_sink_failed", connector=self.connector_name,
                        error=type(exc).__name__)
            return TRY_LATER
        return OK if len(taken) == len(items) and all(taken) else TRY_LATER


class _Handler:
    """aiosmtpd's hooks, turned into calls to the listener."""

    def __init__(self, listener: SmtpListener) -> None:
        self._listener = listener

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self._listener.settings.max_recipients:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        return await self._listener.take(envelope.original_content or b"",
                                         envelope_sender=envelope.mail_from or "",
                                         recipients=list(envelope.rcpt_tos))

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answer quotes the exception, which may quote the mail.
        log.warning("smtp_listener_error", error=type(error).__name__)
        return TRY_LATER
