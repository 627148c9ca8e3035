"""Fixed-window counting for one process, without ``limits``' in-memory storage.

Same answers as ``limits``' ``FixedWindowRateLimiter`` over its ``MemoryStorage`` (a
window opens at a key's first hit and lasts the item's expiry), at a fraction of the
cost: that storage starts an asyncio task to sweep expired keys on nearly every
``incr`` and takes a lock per key, which on the single-send path cost about 240 µs of
CPU a message (``bench.smpp`` 2026-12-07 11:21: `tidings serve` 1,763 µs a single send
against 1,521 before rate limits; see docs/benchmarks.md). One event loop runs this
without an ``await`` between a read and its write, so it needs no lock; expired
windows are swept every ``SWEEP_EVERY`` hits. Redis and the other strategies keep
using ``limits`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limits import RateLimitItem
from limits.util import WindowStats

SWEEP_EVERY = 10_000


class LocalFixedWindow:
    """The ``hit``, ``test`` and ``get_window_stats`` of ``limits``' rate limiters."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window's end, count)
        self._hits = 0

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        key, now = item.key_for(*identifiers), self._clock()
        end, count = self._current(key, item, now)
        if count + cost > item.amount:
            return False
        self._windows[key] = (end, count + cost)
        self._hits += 1
        if self._hits % SWEEP_EVERY == 0:
            self._sweep(now)
        return True

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        _, count = self._current(item.key_for(*identifiers), item, self._clock())
        return count + cost <= item.amount

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        key, now = item.key_for(*identifiers), self._clock()
        window = self._windows.get(key)
        if window is None or now >= window[0]:
            return WindowStats(now, item.amount)
        return WindowStats(window[0], max(0, item.amount - window[1]))

    def keys(self) -> list[str]:
        """The buckets held now (what a test checks for personal data in clear)."""
        return list(self._windows)

    def _current(self, key: str, item: RateLimitItem, now: float) -> tuple[float, int]:
        window = self._windows.get(key)
        if window is None or now >= window[0]:
            return now + item.get_expiry(), 0
        return window

    def _sweep(self, now: float) -> None:
        for key in [k for k, (end, _) in self._windows.items() if now >= end]:
            del self._windows[key]
