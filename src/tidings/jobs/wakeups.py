"""Nudges so a worker starts at once instead of at its next poll.

In one process a nudge is a future set in memory. When processes run apart, a
``publisher`` also carries each nudge to the others (``tidings.jobs.wakeup_bridge`` on
PostgreSQL, ``tidings.jobs.wakeup_sockets`` on SQLite). A nudge is only ever a hint: the job
rows are the truth, and every worker still polls, so a lost nudge delays work
by one poll and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Callable

Publisher = Callable[[str], None]


class Wakeups:
    """A nudge wakes one waiting loop of its kind (or the next one to wait, if all are
    busy): waking every loop for every message would make each run a transaction
    only to find the work already claimed.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._pending: set[str] = set()
        self.publisher: Publisher | None = None

    def notify(self, *kinds: str) -> None:
        """Wake a loop of each kind here, and tell the other processes."""
        self.wake_local(*kinds)
        if self.publisher is not None:
            for kind in kinds:
                self.publisher(kind)

    def wake_local(self, *kinds: str) -> None:
        """Wake a loop of each kind in this process only (a nudge from elsewhere)."""
        for kind in kinds:
            waiters = self._waiters[kind]
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break
            else:
                self._pending.add(kind)

    def notify_all(self, *kinds: str) -> None:
        for kind in kinds:
            for waiter in self._waiters.pop(kind, deque()):
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, kind: str, timeout: float) -> None:
        """Return when nudged, or after ``timeout`` seconds."""
        if kind in self._pending:
            self._pending.discard(kind)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[kind].append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._waiters[kind].remove(waiter)
