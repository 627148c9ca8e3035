"""What one SMPP side did, for ``/metrics``.

The send path only bumps an ``int`` in a dict (by the raw command status); names and
Prometheus families are made when ``/metrics`` is scraped (``tidings.metrics``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import CommandStatus

NO_ANSWER = -1
"""The status counted for a request that got no response (time-out, connection lost)."""


@dataclass(frozen=True)
class SmppSnapshot:
    """One side's state and counts at scrape time."""

    binds: int
    window_in_use: int
    """Our requests sent and not yet answered, over every bind."""
    by_status: Mapping[str, int]
    """Requests of the side's main kind (submit_sm out, or answered for clients), by
    command status name."""
    deliveries: Mapping[str, int]
    """deliver_sm handled (receipts taken, or sent to clients), by result."""


class StatusCounts:
    """Counts by SMPP command status; ``count`` is one dict update."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()

    def count(self, status: int, times: int = 1) -> None:
        self._counts[status] += times

    def by_name(self) -> dict[str, int]:
        named: Counter[str] = Counter()
        for status, times in list(self._counts.items()):
            named["no_answer" if status == NO_ANSWER else status_name(status)] += times
        return dict(named)


def window_in_use(links: Iterable[Link]) -> int:
    return sum(link.session.outstanding for link in links)


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED`` for 0x58; the hex code for a status SMPP does not name."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08x}"
