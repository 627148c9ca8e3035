"""How an account's messages fared over recent periods: counts by status and channel,
the delivery rate, failures by error code; what the portal's dashboard and
``GET /v1/reports/messages`` show.

A period is a range of message ids (ids begin with their creation time, ``core/ids.py``),
so a count reads the ``(tenant_id, id)`` index over that period's rows only, never the
whole table. The periods of one view (today, 7 days, 30 days) nest, so one scan of the
longest counts them all: each row falls in the shortest period that holds it, and a
longer period adds up its own rows and the shorter ones'. Four scans (one a period and
one for the failures) took 482 ms at the median with 100,000 messages in the month on
SQLite (``bench/portal_pages.py``); see docs/benchmarks.md for the one scan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.core.ids import id_floor
from tidings.messaging.lifecycle import Status
from tidings.messaging.models import Message

# Outbound messages whose fate is known, for the delivery rate.
SETTLED = (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED,
           Status.REJECTED)
FAILED = frozenset(SETTLED) - {Status.DELIVERED}


def delivery_rate(by_status: Counter[str]) -> float | None:
    """Delivered among the outbound messages whose fate is known; None: none yet."""
    settled = sum(by_status[s] for s in SETTLED)
    return by_status[Status.DELIVERED] / settled if settled else None


@dataclass
class Period:
    """Counts of one account's messages created since ``since``."""

    since: datetime
    by_status: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    by_error_code: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def delivery_rate(self) -> float | None:
        return delivery_rate(self.by_status)

    @property
    def failed(self) -> int:
        return sum(self.by_status[s] for s in FAILED)

    def failures_by_code(self, top: int = 8) -> list[tuple[str, int]]:
        """The most frequent error codes first (ties by code)."""
        return sorted(self.by_error_code.items(), key=lambda item: (-item[1], item[0]))[:top]


async def periods(session: AsyncSession, *, tenant: str,
                  starts: Sequence[datetime]) -> list[Period]:
    """A ``Period`` for each of ``starts`` (any order), from one scan of the longest."""
    order = sorted(range(len(starts)), key=lambda i: starts[i], reverse=True)  # newest first
    floors = [_floor(starts[i]) for i in order]
    bucket = case(*((Message.id >= floor, rank) for rank, floor in enumerate(floors)),
                  else_=len(floors))
    rows = await session.execute(
        select(bucket, Message.status, Message.channel, Message.error_code, func.count())
        .where(Message.tenant_id == tenant, Message.id >= floors[-1])
        .group_by(bucket, Message.status, Message.channel, Message.error_code))
    found = [Period(since=starts[i]) for i in order]
    for rank, status, channel, error_code, count in rows.all():
        for period in found[rank:]:  # a row of a short period is in every longer one
            period.by_status[status] += count
            period.by_channel[channel] += count
            if error_code is not None:
                period.by_error_code[error_code] += count
    by_start = dict(zip(order, found, strict=True))
    return [by_start[i] for i in range(len(starts))]


async def period(session: AsyncSession, *, tenant: str, since: datetime) -> Period:
    [one] = await periods(session, tenant=tenant, starts=[since])
    return one


def _floor(since: datetime) -> str:
    return id_floor("msg", int(since.timestamp() * 1000))
