"""Failed binds, counted per system_id and per peer address: slowed down, then locked.

Each refused bind counts against both its system_id (known or not, so a lock tells
nothing about which ids exist) and the address it came from. From the
``slow_after``-th failure on, the refusal waits before it is sent, twice as long each
time up to ``max_delay``; at ``lock_after`` failures the key is locked for
``lock_for``, and every bind on it is refused, the right password too, without a hash
verification. Failures are forgotten ``forget_after`` the last one; a good bind
forgets its system_id's (not its address's: a client with one good credential must
not wipe out its guesses at others).

Kept in memory, per process, for at most ``max_keys`` keys (the least recently
failed go first), never logged: a peer address is personal data.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.core.clock import Clock


@dataclass(frozen=True)
class BindPolicy:
    slow_after: int = 3
    first_delay: timedelta = timedelta(seconds=0.5)
    max_delay: timedelta = timedelta(seconds=8)
    lock_after: int = 10
    lock_for: timedelta = timedelta(minutes=15)
    forget_after: timedelta = timedelta(minutes=15)
    max_keys: int = 100_000


@dataclass
class _Failures:
    count: int
    last: datetime
    locked_until: datetime | None = None


def bind_keys(system_id: str, peer: str) -> tuple[str, str]:
    """The keys a bind counts against."""
    return f"system_id:{system_id}", f"peer:{peer}"


class BindGuard:
    def __init__(self, clock: Clock, policy: BindPolicy | None = None) -> None:
        self._clock = clock
        self.policy = policy or BindPolicy()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def locked(self, keys: Iterable[str]) -> list[str]:
        """The keys among these that are locked now."""
        now = self._clock.now()
        return [key for key in keys if (record := self._current(key, now)) is not None
                and record.locked_until is not None and record.locked_until > now]

    def failed(self, keys: Iterable[str]) -> float:
        """Count a refused bind; the seconds to wait before answering it."""
        now, worst = self._clock.now(), 0
        for key in keys:
            record = self._current(key, now) or _Failures(0, now)
            record.count, record.last = record.count + 1, now
            if record.count >= self.policy.lock_after:
                record.locked_until = now + self.policy.lock_for
            self._failures[key] = record
            self._failures.move_to_end(key)
            worst = max(worst, record.count)
        while len(self._failures) > self.policy.max_keys:
            self._failures.popitem(last=False)
        return self._delay(worst).total_seconds()

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _current(self, key: str, now: datetime) -> _Failures | None:
        """The key's failures, unless forgotten (and its lock, if any, is over)."""
        record = self._failures.get(key)
        if record is None:
            return None
        locked = record.locked_until is not None and record.locked_until > now
        if not locked and (record.locked_until is not None
                           or now - record.last > self.policy.forget_after):
            del self._failures[key]  # a lock served, or failures long past: a fresh start
            return None
        return record

    def _delay(self, failures: int) -> timedelta:
        if failures < self.policy.slow_after:
            return timedelta(0)
        doublings = min(failures - self.policy.slow_after, 16)
        return min(self.policy.first_delay * (1 << doublings), self.policy.max_delay)
