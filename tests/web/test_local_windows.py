"""The one-process fixed window: the same decisions as ``limits``' fixed window, on a
clock the test moves."""

from __future__ import annotations

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond

from tidings.web import local_windows
from tidings.web.local_windows import LocalFixedWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_window_opens_at_the_first_hit_and_refuses_past_its_amount() -> None:
    clock, item = Clock(), RateLimitItemPerSecond(3)
    windows = LocalFixedWindow(clock)
    assert [await windows.hit(item, "key", "k1") for _ in range(4)] == [True] * 3 + [False]
    assert await windows.hit(item, "key", "k2")  # another bucket, its own window
    assert not await windows.test(item, "key", "k1")
    stats = await windows.get_window_stats(item, "key", "k1")
    assert (stats.reset_time, stats.remaining) == (1_001.0, 0)
    clock.now = 1_000.999
    assert not await windows.hit(item, "key", "k1")
    clock.now = 1_001.0  # the window's end: a new one opens at this hit
    assert await windows.hit(item, "key", "k1")
    stats = await windows.get_window_stats(item, "key", "k1")
    assert (stats.reset_time, stats.remaining) == (1_002.0, 2)


async def test_a_cost_counts_whole_and_an_unknown_key_has_everything_left() -> None:
    clock, item = Clock(), RateLimitItemPerMinute(10)
    windows = LocalFixedWindow(clock)
    assert await windows.hit(item, "a", cost=8)
    assert not await windows.hit(item, "a", cost=3)  # refused whole, nothing taken
    assert await windows.hit(item, "a", cost=2)
    fresh = await windows.get_window_stats(item, "b")
    assert fresh.remaining == 10


async def test_expired_windows_are_swept() -> None:
    clock, item = Clock(), RateLimitItemPerSecond(1)
    windows = LocalFixedWindow(clock)
    for n in range(local_windows.SWEEP_EVERY - 1):
        await windows.hit(item, f"k{n}")
    clock.now += 5
    await windows.hit(item, "last")  # the sweeping hit
    assert len(windows.keys()) == 1
