"""Bookkeeping behind ``session.Session``: sequence numbers, requests in flight, send pacing.

Pure and clock-free like the session: every time is a monotonic ``now`` passed in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Container
from dataclasses import dataclass

from tidings.connectors.smpp.pdu import Pdu

MAX_SEQUENCE_NUMBER = 0x7FFFFFFF  # SMPP 3.4 §5.1.4: 0x00000001..0x7FFFFFFF


class SequenceNumbers:
    """Hands out 1..0x7FFFFFFF in order, wrapping back to 1 and skipping numbers in use."""

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= MAX_SEQUENCE_NUMBER:
            raise ValueError(f"sequence numbers run 1..{MAX_SEQUENCE_NUMBER}, not {start}")
        self._next = start

    def allocate(self, in_use: Container[int]) -> int:
        # Terminates: far fewer than 2**31 requests can be in flight at once.
        number = self._next
        while number in in_use:
            number = _after(number)
        self._next = _after(number)
        return number


def _after(number: int) -> int:
    return 1 if number >= MAX_SEQUENCE_NUMBER else number + 1


@dataclass(slots=True, eq=False)
class Pending:
    """A request we sent that awaits its response.

    ``deadline`` is None for requests timed elsewhere (bind, unbind). ``windowed``
    requests count against the window.
    """

    request: Pdu
    deadline: float | None
    windowed: bool


class InFlight:
    """Our requests awaiting a response, by sequence number, with their deadlines.

    Every timed request shares one timeout, so deadlines grow in send order: a FIFO
    of timed requests is also a deadline queue, O(1) per request. Answered requests
    stay in the FIFO until they reach its head and are skipped there (lazy removal).
    """

    def __init__(self) -> None:
        self._by_sequence: dict[int, Pending] = {}
        self._in_send_order: deque[Pending] = deque()
        self.windowed = 0

    def __contains__(self, sequence_number: object) -> bool:
        return sequence_number in self._by_sequence

    def add(self, request: Pdu, deadline: float | None, *, windowed: bool) -> None:
        pending = Pending(request, deadline, windowed)
        self._by_sequence[request.sequence_number] = pending
        if deadline is not None:
            self._in_send_order.append(pending)
        if windowed:
            self.windowed += 1

    def get(self, sequence_number: int) -> Pending | None:
        return self._by_sequence.get(sequence_number)

    def remove(self, pending: Pending) -> None:
        del self._by_sequence[pending.request.sequence_number]
        if pending.windowed:
            self.windowed -= 1

    def next_deadline(self) -> float | None:
        head = self._live_head()
        return None if head is None else head.deadline

    def pop_expired(self, now: float) -> list[Pending]:
        """Removes and returns, in send order, the requests whose deadline has passed."""
        expired: list[Pending] = []
        head = self._live_head()
        while head is not None and head.deadline is not None and head.deadline <= now:
            self._in_send_order.popleft()
            self.remove(head)
            expired.append(head)
            head = self._live_head()
        return expired

    def pop_all(self) -> list[Pending]:
        """Removes and returns every request, in send order."""
        everything = list(self._by_sequence.values())
        self._by_sequence.clear()
        self._in_send_order.clear()
        self.windowed = 0
        return everything

    def _live_head(self) -> Pending | None:
        queue = self._in_send_order
        while queue:
            head = queue[0]
            if self._by_sequence.get(head.request.sequence_number) is head:
                return head
            queue.popleft()
        return None


class SendPacer:
    """At most ``rate`` sends per second, at most ``burst`` of them back to back.

    A token bucket in its GCRA form ("theoretical arrival time"): exact float
    comparisons, so calling back at ``next_at(now)`` always finds the send allowed.
    ``rate=None`` means unlimited; ``SessionConfig`` has checked both numbers.
    """

    def __init__(self, rate: float | None, burst: int = 1) -> None:
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._theoretical_arrival = -math.inf

    def next_at(self, now: float) -> float:
        """The earliest time a send may go: ``now`` if it may go now."""
        if not self._interval:
            return now  # unlimited, even if a caller's clock readings jitter backwards
        return max(now, self._theoretical_arrival - self._tolerance)

    def record_send(self, now: float) -> None:
        self._theoretical_arrival = max(self._theoretical_arrival, now) + self._interval
