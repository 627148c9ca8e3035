"""How an account's messages fared over a period: counts by status and channel, the
delivery rate, failures by error code; what the portal's dashboard shows.

A period is a range of message ids (ids begin with their creation time, ``core/ids.py``),
so every count reads the ``(tenant_id, id)`` index over that period's rows only, never
the whole table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.core.ids import id_floor
from tidings.messaging.lifecycle import Status
from tidings.messaging.models import Message

# Outbound messages whose fate is known, for the delivery rate.
SETTLED = (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED,
           Status.REJECTED)
FAILED = frozenset(SETTLED) - {Status.DELIVERED}


@dataclass
class Period:
    """Counts of one account's messages created since ``since``."""

    since: datetime
    by_status: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    failures_by_code: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def delivery_rate(self) -> float | None:
        """Delivered among the outbound messages whose fate is known; None: none yet."""
        settled = sum(self.by_status[s] for s in SETTLED)
        return self.by_status[Status.DELIVERED] / settled if settled else None

    @property
    def failed(self) -> int:
        return sum(self.by_status[s] for s in FAILED)


async def period(session: AsyncSession, *, tenant: str, since: datetime,
                 top_failures: int = 8) -> Period:
    floor = id_floor("msg", int(since.timestamp() * 1000))
    scope = (Message.tenant_id == tenant, Message.id >= floor)
    out = Period(since=since)
    rows = await session.execute(
        select(Message.status, Message.channel, func.count())
        .where(*scope).group_by(Message.status, Message.channel))
    for status, channel, count in rows.all():
        out.by_status[status] += count
        out.by_channel[channel] += count
    failures = await session.execute(
        select(Message.error_code, func.count().label("n"))
        .where(*scope, Message.error_code.is_not(None))
        .group_by(Message.error_code).order_by(func.count().desc(), Message.error_code)
        .limit(top_failures))
    out.failures_by_code = [(str(code), count) for code, count in failures.all()]
    return out
