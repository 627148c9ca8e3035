"""The connector interface every carrier implements (sandbox, SMPP, SMTP, WhatsApp).

A connector takes messages to send and reports what the carrier said. Two
promises make the pipeline crash-safe:

* ``submit`` is idempotent by ``message_id``: submitting a message again after
  a crash must not send it twice (the carrier's answer is repeated instead).
* Delivery reports go to the ``ReportSink`` given at ``start``; a report the sink
  did not take (``False``) must be offered again later, never dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

SubmitOutcome = Literal["accepted", "rejected", "retry"]
FinalReport = Literal["delivered", "undelivered", "failed", "expired", "rejected"]


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    channel: str
    to: str
    sender: str
    body: str
    encoding: str
    num_segments: int


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


# Takes reports durably; returns, per report, whether it was taken (False = offer again).
ReportSink = Callable[[str, Sequence[DeliveryReport]], Awaitable[list[bool]]]


class Connector(Protocol):
    name: str
    channels: frozenset[str]

    async def start(self, sink: ReportSink) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        """Results in input order; never raises for a carrier's answer."""
        ...
