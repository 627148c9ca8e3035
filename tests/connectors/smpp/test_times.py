"""SMPP 3.4 absolute and relative times (§7.1.1), as a pure function: properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.smpp.times import SmppTimeError, parse_smpp_time

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
nows = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                    timezones=st.just(UTC))


def absolute(local: datetime, quarters: int, sign: str) -> str:
    return f"{local:%y%m%d%H%M%S}{local.microsecond // 100_000}{quarters:02d}{sign}"


@given(local=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
       quarters=st.integers(0, 48), sign=st.sampled_from("+-"))
def test_an_absolute_time_is_its_local_time_at_its_offset(local: datetime, quarters: int,
                                                          sign: str) -> None:
    local = local.replace(microsecond=local.microsecond // 100_000 * 100_000)
    offset = timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
    parsed = parse_smpp_time(absolute(local, quarters, sign), now=NOW)
    assert parsed == local.replace(tzinfo=timezone(offset))
    assert parsed is not None
    assert parsed.tzinfo == UTC


@given(now=nows, days=st.integers(0, 99), hours=st.integers(0, 99),
       minutes=st.integers(0, 99), seconds=st.integers(0, 99))
def test_a_relative_time_without_months_is_now_plus_that_much(
        now: datetime, days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
    assert parse_smpp_time(text, now=now) == now + timedelta(
        days=days, hours=hours, minutes=minutes, seconds=seconds)


@given(now=nows, years=st.integers(0, 99), months=st.integers(0, 99))
def test_relative_months_and_years_move_the_calendar_keeping_the_day_where_it_exists(
        now: datetime, years: int, months: int) -> None:
    parsed = parse_smpp_time(f"{years:02d}{months:02d}00000000000R", now=now)
    assert parsed is not None
    moved = 12 * (parsed.year - now.year) + parsed.month - now.month
    assert moved == 12 * years + months
    assert parsed.time() == now.time()
    assert parsed.day == now.day or (parsed.day < now.day and (parsed + timedelta(1)).day == 1)


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),
    ("260201133000004+", datetime(2026, 2, 1, 12, 30, tzinfo=UTC)),  # CET, an hour ahead
    ("260201073000020-", datetime(2026, 2, 1, 12, 30, tzinfo=UTC)),  # five hours behind
    ("000000000100000R", NOW + timedelta(minutes=1)),
    ("000100000000000R", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),  # no 31 February
])
def test_examples(text: str, expected: datetime | None) -> None:
    assert parse_smpp_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", [
    "0000000001000000R",  # 17 characters
    "00000000010000R",  # 14
    "000000000100000r", "000000000100000 ", "26020113300000Z+",
    "261301000000000+",  # month 13
    "260230000000000+",  # 30 February
    "260201240000000+",  # hour 24
    "260201000000049+",  # 49 quarter hours
    "\uff12\uff160201000000000+",  # digits that are not ASCII
])
def test_what_is_not_an_smpp_time_is_an_error(text: str) -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time(text, now=NOW)


@given(text=st.text(max_size=20) | st.from_regex(r"\A[0-9]{15}[-+R]\Z"), now=nows)
def test_any_text_is_a_utc_moment_nothing_or_an_smpp_time_error(text: str,
                                                                now: datetime) -> None:
    try:
        parsed = parse_smpp_time(text, now=now)
    except SmppTimeError:
        return
    assert parsed is None or parsed.tzinfo == UTC
