"""Days of traffic: their bounds, the range of message ids they hold, and when a day is
settled enough to be counted.

A message belongs to the day its id was made (ids begin with the millisecond of their
creation, ``core/ids.py``), so every message is in exactly one day and a day is read
through the primary key's order, never a scan of the table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from tidings.core.ids import id_floor

__all__ = ["ONE_DAY", "day_start", "id_range", "last_settled_day"]

ONE_DAY = timedelta(days=1)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def id_range(day: date, prefix: str = "msg") -> tuple[str, str]:
    """The ids of the day's rows: ``first <= id < after``."""
    start = day_start(day)
    return _floor(prefix, start), _floor(prefix, start + ONE_DAY)


def last_settled_day(now: datetime, settle_days: int) -> date:
    """The newest day that has been over for ``settle_days`` days at ``now`` (UTC): its
    delivery reports are in, as far as they will come."""
    return (now.astimezone(UTC) - timedelta(days=settle_days)).date() - ONE_DAY


def _floor(prefix: str, moment: datetime) -> str:
    return id_floor(prefix, int(moment.timestamp() * 1000))
