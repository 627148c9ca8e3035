"""The connector interface every carrier implements (sandbox, SMPP, SMTP, WhatsApp).

A connector takes messages to send and reports what the carrier said. Two
promises make the pipeline crash-safe:

* ``submit`` is idempotent by ``message_id``: submitting a message again after
  a crash must not send it twice (the carrier's answer is repeated instead).
* Delivery reports go to the ``ReportSink`` given at ``start``, inbound messages to
  the ``InboundSink``; one the sink did not take (``False``) must be offered again
  later, never dropped. A carrier is told "received" only after the sink took it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

SubmitOutcome = Literal["accepted", "rejected", "retry"]
FinalReport = Literal["delivered", "undelivered", "failed", "expired", "rejected"]

# The error code of a ``retry`` that means "this connector cannot take messages now"
# (down, not bound): the router tries the message's next connector at once.
UNAVAILABLE = "connector_unavailable"


@dataclass(frozen=True)
class EmailContent:
    """What an email carries besides its text body (``OutboundMessage.body``)."""

    subject: str
    html: str | None = None


@dataclass(frozen=True)
class WhatsAppContent:
    """A WhatsApp message that is not plain text (plain text needs no content)."""

    kind: Literal["template", "media"]
    template_name: str | None = None
    language: str | None = None  # template language code, e.g. "en_US"
    variables: tuple[str, ...] = ()  # template body parameters, in order
    media_type: Literal["image", "document", "audio", "video"] | None = None
    media_url: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    channel: str
    to: str
    sender: str
    body: str
    encoding: str
    num_segments: int
    content: EmailContent | WhatsAppContent | None = None


@dataclass(frozen=True)
class SubmitResult:
    message_id: str
    outcome: SubmitOutcome
    carrier_message_id: str | None = None
    error_code: str | None = None
    retry_after_seconds: float | None = None


@dataclass(frozen=True)
class DeliveryReport:
    carrier_message_id: str
    status: FinalReport
    error_code: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message a carrier brought in (mobile-originated SMS, say)."""

    channel: str
    sender: str
    to: str
    body: str
    carrier_message_id: str | None = None  # the carrier's id, when it gives one (dedupe)


# Takes reports durably; returns, per report, whether it was taken (False = offer again).
ReportSink = Callable[[str, Sequence[DeliveryReport]], Awaitable[list[bool]]]
# Takes inbound messages durably; per message, whether it was taken (False = offer again).
InboundSink = Callable[[str, Sequence[InboundMessage]], Awaitable[list[bool]]]


async def refuse_inbound(_connector: str, messages: Sequence[InboundMessage]) -> list[bool]:
    """The inbound sink of a process that takes none (tests, tools)."""
    return [False] * len(messages)


class Connector(Protocol):
    name: str
    channels: frozenset[str]

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        """Results in input order; never raises for a carrier's answer."""
        ...

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        """These accepted submits are stored: offer again at once any report for them
        the sink refused because it came before its submit was recorded."""
        ...
