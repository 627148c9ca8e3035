"""Building the service statistics: which days are due, and a day's buckets written.

A day is due once it has been over for ``TIDINGS_STATS_SETTLE_DAYS`` and is not built
yet (``service_stats_days`` has no row for it), from the day of the oldest message
stored; the newest first, a few a run, so that a platform with years of messages
catches up over a few runs instead of one long one. Building a day counts it
(``builder.count_day``, reading only) and then, in one short transaction, replaces
whatever buckets the day had and records it as built: a crash before that commit
leaves the day unbuilt and the next run counts it again from the start; a crash
after leaves it built. Nothing is counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.core.services import Services
from tidings.messaging.models import Message
from tidings.storage.db import SYSTEM
from tidings.usage_stats.builder import Bucket, BucketKey, count_day
from tidings.usage_stats.days import ONE_DAY, last_settled_day
from tidings.usage_stats.models import ServiceStat, ServiceStatsDay

__all__ = ["DAYS_A_RUN", "BuiltDay", "build_day", "build_due", "built_through", "due_days",
           "store_day"]

DAYS_A_RUN = 7


@dataclass(frozen=True)
class BuiltDay:
    day: date
    buckets: int
    messages: int
    seconds: float


async def due_days(rt: Services, *, now: datetime, limit: int = DAYS_A_RUN) -> list[date]:
    """Settled days not built yet, newest first, at most ``limit``."""
    last = last_settled_day(now, rt.settings.stats_settle_days)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        oldest = await session.scalar(select(Message.created_at).order_by(Message.id)
                                      .limit(1))
        if oldest is None or oldest.date() > last:
            return []
        built = set((await session.scalars(select(ServiceStatsDay.day).where(
            ServiceStatsDay.day >= oldest.date(), ServiceStatsDay.day <= last))).all())
    due: list[date] = []
    day = last
    while day >= oldest.date() and len(due) < limit:
        if day not in built:
            due.append(day)
        day -= ONE_DAY
    return due


async def build_due(rt: Services, *, now: datetime | None = None,
                    limit: int = DAYS_A_RUN) -> list[BuiltDay]:
    """Build the days that are due now (the chore, and ``tidings stats build``)."""
    now = now or rt.clock.now()
    return [await build_day(rt, day) for day in await due_days(rt, now=now, limit=limit)]


async def build_day(rt: Services, day: date) -> BuiltDay:
    """Count ``day`` and write its buckets, replacing any it had."""
    started = time.perf_counter()
    buckets = await count_day(rt, day)
    await store_day(rt, day, buckets, now=rt.clock.now())
    return BuiltDay(day, len(buckets), sum(b.messages for b in buckets.values()),
                    round(time.perf_counter() - started, 3))


async def store_day(rt: Services, day: date, buckets: dict[BucketKey, Bucket], *,
                    now: datetime) -> None:
    """One transaction: the day marked built (its row locked first, so two workers that
    build one day at once write it one after the other), its old buckets deleted, the
    new ones written."""
    async with rt.db.transaction(tenant=SYSTEM) as session:
        marker = await session.get(ServiceStatsDay, day, with_for_update=True)
        if marker is None:
            session.add(ServiceStatsDay(day=day, built_at=now, buckets=len(buckets)))
            await session.flush()
        else:
            marker.built_at, marker.buckets = now, len(buckets)
        await replace_buckets(session, day, bucket_rows(day, buckets))


async def replace_buckets(session: AsyncSession, day: date,
                          rows: Sequence[dict[str, object]]) -> None:
    await session.execute(delete(ServiceStat).where(ServiceStat.day == day))
    if rows:
        await session.execute(insert(ServiceStat), list(rows))


def bucket_rows(day: date, buckets: dict[BucketKey, Bucket]) -> list[dict[str, object]]:
    """What is stored of each bucket: counts, and the people as a number only."""
    return [{"day": day, "channel": channel, "direction": direction, "country": country,
             "messages": b.messages, "segments": b.segments, "delivered": b.delivered,
             "failed": b.failed, "subjects": b.subjects}
            for (channel, direction, country), b in sorted(
                buckets.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or ""))]


async def built_through(session: AsyncSession) -> date | None:
    """The newest day built."""
    return await session.scalar(select(ServiceStatsDay.day).order_by(
        ServiceStatsDay.day.desc()).limit(1))
