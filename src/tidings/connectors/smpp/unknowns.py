"""Submits whose fate a crash left unknown, held while a receipt may still tell it.

After a restart, a message the ledger saw leaving (``submit_sm`` written) with no
answer recorded may or may not have been taken by the SMSC. It is held for
``hold_seconds`` from the first look at one while the connector is bound again
(receipts the SMSC kept for us arrive once it is): a receipt for a carrier id nobody
knows whose keys match resolves the oldest matching message as taken, with that id.
What is still held when the window closes is submitted again, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tidings.connectors.smpp.matching import MatchKeys


@dataclass(frozen=True, slots=True)
class Unknown:
    message_id: str
    keys: MatchKeys
    left_at: float  # Unix time the submit left


class HeldUnknowns:
    def __init__(self, unknowns: Sequence[Unknown] = (), hold_seconds: float = 0.0) -> None:
        # Oldest first: when several match one receipt, the oldest is resolved.
        self._held = {u.message_id: u for u in sorted(unknowns, key=lambda u: u.left_at)}
        self._hold_seconds = hold_seconds
        self._until: float | None = None
        # Carrier ids answered since the restart: their receipts are no lost submit's.
        self._answered: set[str] = set()

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._held

    @property
    def begun(self) -> bool:
        return self._until is not None

    def begin(self, now: float) -> None:
        """Start the window (once): the connector is bound, receipts can come."""
        if self._until is None:
            self._until = now + self._hold_seconds

    def active(self, now: float) -> bool:
        """Whether receipts may still resolve held messages. Once the window is over
        none may (each goes again when the dispatcher asks), and the answers kept to
        tell receipts apart are let go."""
        if not self._held or self._over(now):
            self._answered.clear()
            return False
        return True

    def note_answer(self, carrier_id: str, now: float) -> None:
        """An SMSC answer of this run: a receipt naming it is that submit's."""
        if self.active(now):
            self._answered.add(carrier_id)

    def remaining(self, message_id: str, now: float) -> float | None:
        """Seconds ``message_id`` is still held, or None: send it (it never was unknown,
        or its window is over, and then it is let go)."""
        if message_id not in self._held:
            return None
        if self._over(now):
            del self._held[message_id]
            return None
        until = self._until if self._until is not None else now + self._hold_seconds
        return until - now

    def match(self, keys: MatchKeys, *, has_text: bool, carrier_id: str,
              now: float) -> str | None:
        """The oldest held message a receipt with these keys names, no longer held; None
        if none, or if ``carrier_id`` came in an answer of this run."""
        if not self.active(now) or carrier_id in self._answered:
            return None
        for message_id, unknown in self._held.items():
            if (unknown.keys.full == keys.full if has_text
                    else unknown.keys.addresses == keys.addresses):
                del self._held[message_id]
                return message_id
        return None

    def _over(self, now: float) -> bool:
        return self._until is not None and now >= self._until
