"""Retry delays: exponential growth, cap, jitter bounds, and the give-up rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.webhooks.backoff import next_attempt_delay, schedule, should_give_up

DAY = 24 * 3600.0


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (10, 2560.0), (11, 3600.0), (50, 3600.0)],
)
def test_exponential_then_capped_without_jitter(attempt: int, expected: float) -> None:
    assert next_attempt_delay(attempt, jitter=0) == expected


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert next_attempt_delay(10_000, jitter=0) == 3600.0
    assert next_attempt_delay(10_000) <= 3600.0 * 1.2


def test_custom_base_and_cap() -> None:
    delays = [next_attempt_delay(n, base_seconds=1, cap_seconds=10, jitter=0) for n in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]


@given(attempt=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_jitter_stays_within_bounds(attempt: int, seed: int) -> None:
    plain = next_attempt_delay(attempt, jitter=0)
    jittered = next_attempt_delay(attempt, jitter=0.2, rng=random.Random(seed))
    assert plain * 0.8 <= jittered <= plain * 1.2


def test_jitter_actually_varies_and_is_reproducible() -> None:
    rng = random.Random(42)
    delays = {next_attempt_delay(5, rng=rng) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) >= 80 * 0.8
    assert max(delays) <= 80 * 1.2
    first = [next_attempt_delay(3, rng=random.Random(7)) for _ in range(2)]
    assert first[0] == first[1]


def test_default_rng_is_used_when_none_given() -> None:
    assert 4.0 <= next_attempt_delay(1) <= 6.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"attempt": -1},
        {"attempt": 1, "base_seconds": 0},
        {"attempt": 1, "cap_seconds": 1},
        {"attempt": 1, "jitter": 1.0},
        {"attempt": 1, "jitter": -0.1},
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any]) -> None:
    attempt = int(kwargs.pop("attempt"))
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct messages
        next_attempt_delay(attempt, **kwargs)


def test_should_give_up() -> None:
    first = datetime(2024, 1, 1, tzinfo=UTC)
    assert not should_give_up(first, first, max_age_seconds=DAY)
    assert not should_give_up(first, first + timedelta(hours=23, minutes=59), max_age_seconds=DAY)
    assert should_give_up(first, first + timedelta(hours=24), max_age_seconds=DAY)
    assert should_give_up(first, first + timedelta(days=3), max_age_seconds=DAY)


def test_schedule_for_default_policy_keeps_going_for_24_hours() -> None:
    delays = schedule(DAY, 5.0, 3600.0)
    assert delays[:11] == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert all(d == 3600 for d in delays[10:])
    total = sum(delays)
    assert total < DAY  # the last retry still starts within the 24 hours
    assert total + 3600 >= DAY  # and one more would not
    assert len(delays) == 32  # so 33 attempts in all


def test_schedule_agrees_with_should_give_up() -> None:
    first = datetime(2024, 1, 1, tzinfo=UTC)
    at = first
    for delay in schedule(DAY):
        at += timedelta(seconds=delay)
        assert not should_give_up(first, at, max_age_seconds=DAY)
    at += timedelta(seconds=next_attempt_delay(len(schedule(DAY)) + 1, jitter=0))
    assert should_give_up(first, at, max_age_seconds=DAY)


def test_schedule_short_max_age() -> None:
    assert schedule(5.0) == []
    assert schedule(5.1) == [5.0]
    assert schedule(40.0, 5.0, 3600.0) == [5.0, 10.0, 20.0]


def test_schedule_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_age"):
        schedule(0)
    with pytest.raises(ValueError, match="base"):
        schedule(DAY, 0, 10)
