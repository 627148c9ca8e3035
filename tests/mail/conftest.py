"""A real SMTP relay on loopback (aiosmtpd) that records mails or answers as told, and a
runtime whose platform mail goes through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, LoginPassword, Session

from tidings.mail.sender import PlatformMailSender
from tidings.runtime import Runtime


@dataclass
class Relay:
    """aiosmtpd's hooks: each mail taken is recorded; ``answers`` go first, in order."""

    port: int = 0
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[bytes | None] = field(default_factory=list)  # the user each mail came with
    over_tls: list[bool] = field(default_factory=list)
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
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.logins.append(login)
        self.over_tls.append(server.transport is not None and
                             server.transport.get_extra_info("sslcontext") is not None)
        return "250 2.0.0 queued"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_relay(**options: Any) -> AsyncIterator[Relay]:
    """An aiosmtpd relay on a free loopback port; ``options`` go to aiosmtpd's ``SMTP``."""
    recorder = Relay()
    loop = asyncio.get_running_loop()
    sessions: list[SMTP] = []

    def session() -> SMTP:
        smtp = SMTP(recorder, hostname="relay.test", loop=loop, **options)
        sessions.append(smtp)
        return smtp

    server = await loop.create_server(session, "127.0.0.1", 0)
    recorder.port = int(server.sockets[0].getsockname()[1])
    try:
        yield recorder
    finally:
        server.close()
        for smtp in sessions:
            if smtp.transport is not None:
                smtp.transport.close()
        await server.wait_closed()


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    async with running_relay() as recorder:
        yield recorder


def send_through(rt: Runtime, relay_url: str) -> None:
    """From now on the runtime's platform mail goes to ``relay_url`` (closed with it)."""
    settings = rt.settings.model_copy(update={"platform_mail_relay": relay_url})
    rt.platform_mail = PlatformMailSender.from_settings(settings)
