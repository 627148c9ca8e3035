"""The message status lifecycle: forward-only.

A status report that would move a message backwards (a late ``sent`` after
``delivered``) or out of a final status is kept in the event history with
``applied = false`` and changes nothing else.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELED = "canceled"
    NOT_ACCEPTED = "not_accepted"
    RECEIVED = "received"  # inbound messages


FINAL = frozenset({
    Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED, Status.REJECTED,
    Status.CANCELED, Status.NOT_ACCEPTED, Status.RECEIVED,
})
_RANK = {Status.ACCEPTED: 0, Status.SCHEDULED: 1, Status.QUEUED: 2, Status.SENT: 3}
_FINAL_RANK = 4


def rank(status: str) -> int:
    return _FINAL_RANK if status in FINAL else _RANK[Status(status)]


def can_move(current: str, new: str) -> bool:
    """True when ``new`` is a step forward from ``current``."""
    return current not in FINAL and rank(new) > rank(current)


def is_final(status: str) -> bool:
    return status in FINAL
