"""What may be shown of the service statistics: buckets of at least k people (RET-3).

``published`` is the only reader of ``service_stats`` for anything shown (the operator
API, its CSV, the console, the CLI). With k = ``TIDINGS_STATS_MIN_SUBJECTS`` (5):

- a bucket of k people or more is shown as it is;
- the buckets of one day, channel and direction with fewer than k people each are added
  up into one bucket of country ``other``, shown if it reaches k itself. Its people add
  up exactly: numbers of different countries are different numbers. The bucket of no
  country (e-mail, numbers of no country, erased people) is never added in: its one
  person counted for the messages whose people can no longer be told could be anyone,
  also someone counted in a country;
- anything else is left out, and is in no total.

A total is the sum of the buckets shown, never of what is stored: a total of everything
beside the buckets shown would give the hidden ones by subtraction. Filters pick from
the buckets shown, after the rule is applied, so no choice of filters shows a bucket
the rule hid. Each day is built once and never changes (``builder.py``), so two answers
given at different times cannot be subtracted from each other either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.usage_stats.models import ServiceStat

__all__ = ["OTHER", "Counts", "Shown", "k_anonymous", "published", "totals"]

OTHER = "other"  # the country of the merged small buckets
_COLUMNS = (ServiceStat.day, ServiceStat.channel, ServiceStat.direction, ServiceStat.country,
            ServiceStat.messages, ServiceStat.segments, ServiceStat.delivered,
            ServiceStat.failed, ServiceStat.subjects)  # in the order of ``Counts``


@dataclass(frozen=True)
class Counts:
    """A bucket as stored, or as shown."""

    day: date
    channel: str
    direction: str
    country: str | None
    messages: int
    segments: int
    delivered: int
    failed: int
    subjects: int


@dataclass(frozen=True)
class Shown:
    messages: int
    segments: int
    delivered: int
    failed: int


async def published(session: AsyncSession, *, first: date, last: date, min_subjects: int,
                    channel: str | None = None, country: str | None = None) -> list[Counts]:
    """The buckets of ``first``..``last`` (days, included) that may be shown, ordered by
    day, channel, direction and country (``other``, then no country, last)."""
    rows = (await session.execute(select(*_COLUMNS).where(
        ServiceStat.day >= first, ServiceStat.day <= last))).all()
    shown = k_anonymous((Counts(*row) for row in rows), min_subjects)
    return [b for b in shown if (channel is None or b.channel == channel)
            and (country is None or b.country == country)]


def k_anonymous(stored: Iterable[Counts], k: int) -> list[Counts]:
    """The buckets of k people or more, and each group's small ones merged into ``other``
    where that reaches k; in order."""
    out: list[Counts] = []
    for _group, members in groupby(sorted(stored, key=_group_key), key=_group_key):
        bucket_list = list(members)
        out += [b for b in bucket_list if b.subjects >= k]
        merged = _merge([b for b in bucket_list if b.subjects < k and b.country is not None])
        if merged is not None and merged.subjects >= k:
            out.append(merged)
    return sorted(out, key=_order)


def totals(buckets: Sequence[Counts]) -> Shown:
    """The sums of the buckets shown (people are not added: a person is in many)."""
    return Shown(messages=sum(b.messages for b in buckets),
                 segments=sum(b.segments for b in buckets),
                 delivered=sum(b.delivered for b in buckets),
                 failed=sum(b.failed for b in buckets))


def _merge(small: Sequence[Counts]) -> Counts | None:
    if not small:
        return None
    first = small[0]
    return Counts(day=first.day, channel=first.channel, direction=first.direction,
                  country=OTHER, messages=sum(b.messages for b in small),
                  segments=sum(b.segments for b in small),
                  delivered=sum(b.delivered for b in small),
                  failed=sum(b.failed for b in small),
                  subjects=sum(b.subjects for b in small))


def _group_key(bucket: Counts) -> tuple[date, str, str]:
    return bucket.day, bucket.channel, bucket.direction


def _order(bucket: Counts) -> tuple[date, str, str, int, str]:
    place = 2 if bucket.country is None else 1 if bucket.country == OTHER else 0
    return bucket.day, bucket.channel, bucket.direction, place, bucket.country or ""
