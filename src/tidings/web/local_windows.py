"""Fixed windows counted in one process's memory, for the rate limits' default set-up.

The same answers as ``limits``' ``FixedWindowRateLimiter`` over its ``MemoryStorage``
(a window opens at a bucket's first hit and lasts its limit's period; a refused hit
takes nothing), at a fraction of the cost on the single-send path, where every request
is charged to two buckets. Counted with callgrind, instructions per single
``POST /v1/messages`` in ``tidings serve`` (``bench/cpu_per_send.py --api-only
--concurrency 1 --sends 300 --repeat 3 --callgrind``, with the key, rights and routing
caches held through the window, 2026-12-07; windows of one run differ by about 1 %):

    the build before rate limits (667fd57)           2.68 M
    this build, the charge switched off              2.73 M
    limits' fixed window over its MemoryStorage      2.93 M
    this module                                      2.74 M

That storage builds a string key per bucket (escaping every identifier), takes an
``asyncio.Lock`` per key, starts an asyncio task to sweep expired keys on nearly every
increment, and answers the RateLimit fields with a second look-up. Here one event loop
does the counting without an ``await`` between a read and its write, so no lock is
needed; a hit returns its window, so the fields cost nothing more; expired windows are
swept every ``SWEEP_EVERY`` hits. Redis (several processes) and the other strategies
keep using ``limits`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem

SWEEP_EVERY = 10_000


@dataclass(frozen=True)
class Limit:
    """One ``limits`` item with what counting needs of it, worked out once."""

    item: RateLimitItem
    amount: int
    period: int  # seconds
    rate: float  # requests per second: the lower, the tighter

    @classmethod
    def of(cls, item: RateLimitItem) -> Limit:
        period = item.get_expiry()
        return cls(item, item.amount, period, item.amount / period)


class Window:
    """A bucket's current window: when it ends and how many hits it holds."""

    __slots__ = ("count", "end")

    def __init__(self, end: float) -> None:
        self.end, self.count = end, 0


@dataclass(frozen=True)
class Charged:
    """Where a bucket stood once a request was charged to it (or peeked at)."""

    allowed: bool
    limit: Limit  # the limit that refused it, or else the tightest one
    remaining: int  # hits left in the window
    reset_seconds: float  # until the window ends

    @classmethod
    def of(cls, allowed: bool, limit: Limit, window: Window, now: float) -> Charged:
        return cls(allowed, limit, max(0, limit.amount - window.count),
                   max(0.0, window.end - now))


class LocalWindows:
    """Every bucket's window in this process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[tuple[int, int, Hashable], Window] = {}
        self._hits = 0

    def charge(self, plan: Sequence[tuple[Sequence[Limit], Hashable]]) -> Charged:
        """Hit each limit of each bucket in turn, stopping at the first that is spent
        (the buckets before it keep their hit, as with ``limits``)."""
        now = self._clock()
        tightest: tuple[Limit, Window] | None = None
        for limits, bucket in plan:
            for limit in limits:
                window = self._window(limit, bucket, now)
                if window.count >= limit.amount:
                    return Charged.of(False, limit, window, now)
                window.count += 1
                if tightest is None or limit.rate < tightest[0].rate:
                    tightest = (limit, window)
        self._note_hit(now)
        if tightest is None:
            raise ValueError("a charge needs at least one limit")
        return Charged.of(True, tightest[0], tightest[1], now)

    def hit(self, limit: Limit, bucket: Hashable) -> Charged:
        return self.charge((((limit,), bucket),))

    def peek(self, limit: Limit, bucket: Hashable) -> Charged:
        """Where the bucket stands, without a hit (allowed: one more would go)."""
        now = self._clock()
        window = self._windows.get((limit.amount, limit.period, bucket))
        if window is None or now >= window.end:
            window = Window(now + limit.period)
        return Charged.of(window.count < limit.amount, limit, window, now)

    def buckets(self) -> list[Hashable]:
        """The buckets held now (what a test checks for personal data in clear)."""
        return [bucket for _, _, bucket in self._windows]

    def _window(self, limit: Limit, bucket: Hashable, now: float) -> Window:
        key = (limit.amount, limit.period, bucket)
        window = self._windows.get(key)
        if window is None or now >= window.end:
            window = self._windows[key] = Window(now + limit.period)
        return window

    def _note_hit(self, now: float) -> None:
        self._hits += 1
        if self._hits % SWEEP_EVERY == 0:
            expired = [key for key, window in self._windows.items() if now >= window.end]
            for key in expired:
                del self._windows[key]
