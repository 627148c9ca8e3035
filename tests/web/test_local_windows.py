"""One process's fixed windows: the decisions of ``limits``' fixed window, on a clock the
test moves, and the same decisions as the library's own over the same hits."""

from __future__ import annotations

import pytest
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter

from tidings.web import local_windows
from tidings.web.local_windows import Limit, LocalWindows

THREE_A_SECOND = Limit.of(RateLimitItemPerSecond(3))
TEN_A_MINUTE = Limit.of(RateLimitItemPerMinute(10))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_limit_knows_its_period_and_rate() -> None:
    assert (TEN_A_MINUTE.amount, TEN_A_MINUTE.period) == (10, 60)
    assert TEN_A_MINUTE.rate == pytest.approx(10 / 60)


def test_a_window_opens_at_the_first_hit_and_refuses_past_its_amount() -> None:
    clock = Clock()
    windows = LocalWindows(clock)
    hits = [windows.hit(THREE_A_SECOND, ("key", "k1")) for _ in range(4)]
    assert [hit.allowed for hit in hits] == [True, True, True, False]
    assert [hit.remaining for hit in hits] == [2, 1, 0, 0]
    assert windows.hit(THREE_A_SECOND, ("key", "k2")).allowed  # its own window
    assert not windows.peek(THREE_A_SECOND, ("key", "k1")).allowed
    refused = windows.hit(THREE_A_SECOND, ("key", "k1"))
    assert refused.reset_seconds == pytest.approx(1.0)
    clock.now = 1_000.999
    assert not windows.hit(THREE_A_SECOND, ("key", "k1")).allowed
    clock.now = 1_001.0  # the window's end: a new one opens at this hit
    reopened = windows.hit(THREE_A_SECOND, ("key", "k1"))
    assert (reopened.allowed, reopened.remaining, reopened.reset_seconds) == (True, 2, 1.0)


def test_a_charge_stops_at_the_first_spent_bucket_and_reports_the_tightest() -> None:
    windows = LocalWindows(Clock())
    plan = (((TEN_A_MINUTE,), ("credential", "api_key", "k")),
            ((THREE_A_SECOND,), ("account", "acc")))
    first = windows.charge(plan)
    assert first.allowed
    assert first.limit is TEN_A_MINUTE  # 10/min is tighter than 3/s
    windows.charge(plan)
    windows.charge(plan)
    refused = windows.charge(plan)
    assert not refused.allowed
    assert refused.limit is THREE_A_SECOND
    # The credential's hit before the spent account bucket stays taken, as in limits.
    assert windows.peek(TEN_A_MINUTE, ("credential", "api_key", "k")).remaining == 10 - 4


def test_peeking_takes_nothing_and_an_unknown_bucket_has_everything_left() -> None:
    windows = LocalWindows(Clock())
    fresh = windows.peek(TEN_A_MINUTE, ("nobody",))
    assert (fresh.allowed, fresh.remaining) == (True, 10)
    assert windows.buckets() == []


def test_expired_windows_are_swept() -> None:
    clock = Clock()
    windows = LocalWindows(clock)
    for n in range(local_windows.SWEEP_EVERY - 1):
        windows.hit(THREE_A_SECOND, (f"k{n}",))
    clock.now += 5
    windows.hit(THREE_A_SECOND, ("last",))  # the sweeping hit
    assert windows.buckets() == [("last",)]


def test_a_charge_without_limits_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one limit"):
        LocalWindows(Clock()).charge((((), ("empty",)),))


async def test_the_same_decisions_as_the_librarys_fixed_window() -> None:
    """Hits on a few buckets within one second: allowed or refused alike."""
    library = FixedWindowRateLimiter(MemoryStorage())
    ours = LocalWindows()
    item = RateLimitItemPerMinute(5)
    limit = Limit.of(item)
    buckets = ["a", "b", "a", "a", "c", "a", "a", "a", "b", "a"]
    theirs = [await library.hit(item, bucket) for bucket in buckets]
    mine = [ours.hit(limit, (bucket,)).allowed for bucket in buckets]
    assert mine == theirs
    assert theirs.count(False) == 2  # the test means something: some were refused
