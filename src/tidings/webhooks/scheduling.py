"""Which webhook goes next, so that a slow endpoint delays only itself.

Every request in flight holds one of the sender's ``total`` slots and one of its
origin's slots (origin: scheme, host and port). How many slots an origin gets adapts
(``adaptive.py``): it starts at ``per_origin``, grows while the origin answers promptly,
up to ``per_origin_max``, and halves when it times out, refuses or answers 5xx/429. A
batch starts its requests in an order that takes its tenants in turn, skipping those
whose origin is full; so an endpoint that hangs holds its origin's slots and the rest
of the batch goes past it.

A batch waits for a full origin while it has requests of its own in flight (they
free slots as they finish), or while the origin is answering (one of its requests
finished within ``STALL_SECONDS``), and never past its deadline. An origin that
other batches hold and that answers nothing stalls the batch no longer: what it
has not started is deferred, handed back unsent to be claimed again later,
rather than holding a worker loop behind an endpoint that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence

from tidings.webhooks.adaptive import OriginLimits, Signal

STALL_SECONDS = 1.0
"""A full origin none of whose requests finished for this long is stalled."""


class Slots:
    """Requests in flight, in all and per origin."""

    def __init__(self, *, total: int, per_origin: int, per_origin_max: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``per_origin_max``: the ceiling an origin's slots may grow to (None: no growth
        past ``per_origin``)."""
        self._total = total
        self._limits = OriginLimits(initial=per_origin, ceiling=per_origin_max or per_origin,
                                    clock=clock)
        self._clock = clock
        self._in_flight = 0
        self._by_origin: Counter[str] = Counter()
        self._last_finished: dict[str, float] = {}  # of origins with requests in flight
        self._freed = asyncio.Event()

    def limit(self, origin: str) -> int:
        """How many requests ``origin`` may have in flight now."""
        return self._limits.limit(origin)

    def has_room(self, origin: str) -> bool:
        return self._in_flight < self._total and \
            self._by_origin[origin] < self._limits.limit(origin)

    def stalled(self, origin: str) -> bool:
        """Full, and none of its requests finished lately (or ever, since it was idle)."""
        if self._by_origin[origin] < self._limits.limit(origin):
            return False
        last = self._last_finished.get(origin)
        return last is None or self._clock() - last > STALL_SECONDS

    def take(self, origin: str) -> float:
        """Take a slot of ``origin``; the time it was taken (to give back with it)."""
        self._in_flight += 1
        self._by_origin[origin] += 1
        return self._clock()

    def give_back(self, origin: str, signal: Signal = Signal.NEUTRAL, *,
                  taken_at: float = 0.0) -> None:
        """Free a slot of ``origin``; ``signal`` tells what its answer says of the origin."""
        self._limits.answered(origin, signal, started_at=taken_at,
                              in_flight=self._by_origin[origin])
        self._in_flight -= 1
        self._by_origin[origin] -= 1
        self._last_finished[origin] = self._clock()
        if not self._by_origin[origin]:
            del self._by_origin[origin], self._last_finished[origin]
        # Wake every waiter once; later waiters wait on a new event.
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()

    async def freed(self, timeout: float | None = None) -> None:
        """Return when a slot is given back (or after ``timeout`` seconds)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), timeout)

    async def acquire(self, origin: str) -> float:
        while not self.has_room(origin):
            await self.freed()
        return self.take(origin)


def fair_order(tenants: Sequence[str]) -> list[int]:
    """Indices that take the tenants in turn, each tenant's in their order:
    ``["a", "a", "a", "b"]`` gives ``[0, 3, 1, 2]``."""
    by_tenant: dict[str, list[int]] = {}
    for index, tenant in enumerate(tenants):
        by_tenant.setdefault(tenant, []).append(index)
    rounds = itertools.zip_longest(*by_tenant.values())
    return [index for turn in rounds for index in turn if index is not None]


class BatchTurns:
    """The requests of one batch not started yet; lanes ask it for the next one."""

    def __init__(self, slots: Slots, origins: Sequence[str], tenants: Sequence[str], *,
                 patience_seconds: float) -> None:
        self._slots, self._origins = slots, origins
        self._waiting = fair_order(tenants)
        self._in_flight = 0
        self._taken_at: dict[int, float] = {}
        self._deadline = time.monotonic() + patience_seconds

    async def next(self) -> int | None:
        """The index of the request to start (its slots taken), or None: no more."""
        while self._waiting:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return None
            index, all_stalled = self._startable()
            if index is not None:
                self._taken_at[index] = self._slots.take(self._origins[index])
                self._in_flight += 1
                return index
            if all_stalled and not self._in_flight:
                return None  # only stalled origins other batches hold: defer
            await self._slots.freed(remaining)
        return None

    def finished(self, index: int, signal: Signal = Signal.NEUTRAL) -> None:
        self._in_flight -= 1
        self._slots.give_back(self._origins[index], signal,
                              taken_at=self._taken_at.pop(index))

    def _startable(self) -> tuple[int | None, bool]:
        """The first waiting request with room; else whether every one waits on a
        stalled origin (rather than on one that answers, or on the sender's slots)."""
        blocked: set[str] = set()
        all_stalled = True
        for position, index in enumerate(self._waiting):
            origin = self._origins[index]
            if origin in blocked:
                continue
            if self._slots.has_room(origin):
                del self._waiting[position]
                return index, False
            blocked.add(origin)
            all_stalled = all_stalled and self._slots.stalled(origin)
        return None, all_stalled
