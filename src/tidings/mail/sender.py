"""The platform mail sender: through the operator's SMTP relay, or into the mailbox.

With ``TIDINGS_PLATFORM_MAIL_RELAY`` set, mails go out through the SMTP connector
(``connectors/smtp``), the same code that carries clients' email: its answers (accepted,
retry, rejected with an SMTP code), its refusal of header injection, and its memory of
answers by id, so a mail id retried in this process is not sent twice. Without a relay,
mails are kept in the local mailbox file (``mailbox.py``) instead: the development set-up
of ``make serve``, where nobody should receive real mail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from tidings.core.settings import Settings
from tidings.mail.mailbox import KeptMail, Mailbox, mailbox_path
from tidings.mail.relay import RelayConfig, parse_relay_url
from tidings.messaging.addresses import AddressError, normalize_email
from tidings.storage.vault import TenantKeys

if TYPE_CHECKING:  # the SMTP client only where a relay is used
    from tidings.connectors.smtp.connector import SmtpConnector

RELAY_CONNECTOR = "platform-mail"
RELAY_TIMEOUT_SECONDS = 30.0
RELAY_CONNECTIONS = 2  # the platform's own mail is a trickle next to clients' traffic
MAILBOX_UNWRITABLE = "mailbox_unwritable"
Status = Literal["sent", "retry", "failed"]
_OUTCOMES: dict[str, Status] = {"accepted": "sent", "retry": "retry", "rejected": "failed"}


@dataclass(frozen=True)
class OutgoingMail:
    id: str
    kind: str
    account_id: str | None
    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """What became of a mail: ``sent`` (or kept in the mailbox), ``retry`` later, or
    ``failed`` for good; ``error`` is a stable code (``smtp_5xx:550``, …)."""

    status: Status
    error: str | None = None


class PlatformMailSender:
    def __init__(self, *, relay: RelayConfig | None, sender: str, mailbox: Mailbox) -> None:
        self.relay, self.sender, self.mailbox = relay, sender, mailbox
        self._connector: SmtpConnector | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformMailSender:
        """The sender the settings describe; ``ValueError`` naming the bad setting."""
        relay = (parse_relay_url(settings.platform_mail_relay)
                 if settings.platform_mail_relay.strip() else None)
        try:
            sender = normalize_email(settings.platform_mail_from.strip())
        except AddressError:
            raise ValueError("TIDINGS_PLATFORM_MAIL_FROM must be a plain address like "
                             "notices@example.com") from None
        return cls(relay=relay, sender=sender, mailbox=Mailbox(mailbox_path(settings.data_dir)))

    @property
    def via(self) -> Literal["relay", "mailbox"]:
        return "relay" if self.relay is not None else "mailbox"

    async def send(self, mails: Sequence[OutgoingMail], *, platform: TenantKeys,
                   now: datetime) -> list[Outcome]:
        """An outcome per mail, in order; never raises for the relay's answer."""
        if not mails:
            return []
        if self.relay is None:
            return [await self._keep(mail, platform, now, status="kept") for mail in mails]
        return await self._relay_send(mails, self.relay)

    async def keep_failed(self, mail: OutgoingMail, error: str, *, platform: TenantKeys,
                          now: datetime) -> None:
        """Keep a mail that failed for good in the mailbox, marked with its error, where
        ``tidings mail list`` shows it (a relay's refusal too: the mail is not lost)."""
        await self._keep(mail, platform, now, status="failed", error=error)

    async def close(self) -> None:
        connector, self._connector = self._connector, None
        if connector is not None:
            await connector.stop()

    async def _keep(self, mail: OutgoingMail, platform: TenantKeys, now: datetime, *,
                    status: str, error: str | None = None) -> Outcome:
        kept = KeptMail(id=mail.id, kind=mail.kind, account_id=mail.account_id, at=now,
                        status=status, error=error, to=mail.to, sender=self.sender,
                        subject=mail.subject, body=mail.body)
        try:
            await asyncio.to_thread(self.mailbox.keep, kept, platform)
        except OSError:
            return Outcome("retry", MAILBOX_UNWRITABLE)
        return Outcome("sent")

    async def _relay_send(self, mails: Sequence[OutgoingMail],
                          relay: RelayConfig) -> list[Outcome]:
        from tidings.connectors.base import EmailContent, OutboundMessage

        connector = self._relay_connector(relay)
        results = await connector.submit([
            OutboundMessage(mail.id, "email", mail.to, self.sender, mail.body, "utf-8", 1,
                            EmailContent(mail.subject)) for mail in mails])
        return [Outcome(_OUTCOMES[r.outcome], r.error_code) for r in results]

    def _relay_connector(self, relay: RelayConfig) -> SmtpConnector:
        """Built on first use and kept: its connections, and its memory of the ids sent."""
        if self._connector is None:
            from tidings.connectors.smtp.connector import SmtpConnector, SmtpSettings

            self._connector = SmtpConnector(RELAY_CONNECTOR, SmtpSettings(
                host=relay.host, port=relay.port, security=relay.security,
                username=relay.username, password=relay.password, ca_file=relay.ca_file,
                mail_domain=self.sender.rpartition("@")[2], default_from=self.sender,
                timeout_seconds=RELAY_TIMEOUT_SECONDS, concurrency=RELAY_CONNECTIONS))
        return self._connector
