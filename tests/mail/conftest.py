"""A real SMTP relay on loopback (aiosmtpd) that records mails or answers as told, and a
runtime whose platform mail goes through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tidings.mail.sender import PlatformMailSender
from tidings.runtime import Runtime


@dataclass
class Relay:
    """aiosmtpd's hooks: each mail taken is recorded; ``answers`` go first, in order."""

    port: int = 0
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    rcpt_answers: list[str] = field(default_factory=list)
    data_answers: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_answers:
            return self.data_answers.pop(0)
        parsed = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
        return "250 2.0.0 queued"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    recorder = Relay()
    loop = asyncio.get_running_loop()
    sessions: list[SMTP] = []

    def session() -> SMTP:
        smtp = SMTP(recorder, hostname="relay.test", loop=loop)
        sessions.append(smtp)
        return smtp

    server = await loop.create_server(session, "127.0.0.1", 0)
    recorder.port = int(server.sockets[0].getsockname()[1])
    yield recorder
    server.close()
    for smtp in sessions:
        if smtp.transport is not None:
            smtp.transport.close()
    await server.wait_closed()


def send_through(rt: Runtime, relay_url: str) -> None:
    """From now on the runtime's platform mail goes to ``relay_url`` (closed with it)."""
    settings = rt.settings.model_copy(update={"platform_mail_relay": relay_url})
    rt.platform_mail = PlatformMailSender.from_settings(settings)
