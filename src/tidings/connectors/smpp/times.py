"""SMPP 3.4 times (§7.1.1): ``schedule_delivery_time`` and ``validity_period``.

Sixteen characters, ``YYMMDDhhmmsstnnp``:

* absolute (``p`` is ``+`` or ``-``): a local date and time to the tenth of a second,
  ``nn`` quarter hours ahead of (``+``) or behind (``-``) UTC, 00 to 48; ``YY`` is
  20YY;
* relative (``p`` is ``R``): years, months, days, hours, minutes and seconds from
  now; the last three digits are unused (``000``), and are not looked at.

Pure: the caller gives ``now``.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

_TIME = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})"
                   r"([0-9])([0-9]{2})([-+R])")
MAX_QUARTER_HOURS = 48


class SmppTimeError(ValueError):
    """Not an SMPP time, or not a real date."""


def parse_smpp_time(text: str, *, now: datetime) -> datetime | None:
    """The moment, in UTC, an SMPP time names; None for an empty field (not given)."""
    if not text:
        return None
    found = _TIME.fullmatch(text)
    if found is None:
        raise SmppTimeError("an SMPP time is 16 characters, YYMMDDhhmmsstnnp")
    *fields, tenths, quarters, sign = found.groups()
    years, months, days, hours, minutes, seconds = (int(f) for f in fields)
    if sign == "R":
        try:
            return _add_months(now.astimezone(UTC), 12 * years + months) + timedelta(
                days=days, hours=hours, minutes=minutes, seconds=seconds)
        except (ValueError, OverflowError):  # past the year 9999
            raise SmppTimeError("too far ahead") from None
    if int(quarters) > MAX_QUARTER_HOURS:
        raise SmppTimeError("an SMPP time is at most 48 quarter hours from UTC")
    offset = timedelta(minutes=15 * int(quarters)) * (1 if sign == "+" else -1)
    try:
        local = datetime(2000 + years, months, days, hours, minutes, seconds,
                         100_000 * int(tenths), tzinfo=timezone(offset))
    except ValueError:
        raise SmppTimeError("not a date and time") from None
    return local.astimezone(UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later; the month's last day if it is shorter."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
