"""The timing of a policy change, as the seed policies promise it (pure functions).

- The privacy policy: "If you don't object in writing within a month from the date of
  notification, the modifications are deemed accepted." Objections are taken until one
  calendar month after publication (the notices go out then), that instant included;
  a month counts as ``privacy/deadlines.py`` counts it (31 January + 1 month is 28 or
  29 February).
- The DPA: notice "at least thirty (30) calendar days before the amendments enter into
  force". A version takes effect no sooner than both a month and thirty days after its
  publication; by default at the later of the two.

A client's state is read from the clock: ``pending`` until the deadline, then
``deemed_accepted`` unless it answered (``objected`` or ``accepted``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from dateutil.relativedelta import relativedelta

__all__ = ["LONGEST_NOTICE", "State", "Status", "earliest_effective_at", "in_force_at",
           "objection_deadline", "objections_open", "state_of", "status_of"]

_A_MONTH = relativedelta(months=1)
_THIRTY_DAYS = timedelta(days=30)
# A version announced further ahead than this is a mistake, not a plan.
LONGEST_NOTICE = relativedelta(years=2)


class State(StrEnum):
    """Where a client stands with a version, at an instant."""

    PENDING = "pending"  # told; the month to object runs
    OBJECTED = "objected"
    ACCEPTED = "accepted"  # explicitly
    DEEMED_ACCEPTED = "deemed_accepted"  # silent past the deadline


class Status(StrEnum):
    """Where a version stands among its kind's, at an instant."""

    UPCOMING = "upcoming"  # published, not yet in effect
    IN_FORCE = "in_force"  # the latest in effect
    SUPERSEDED = "superseded"  # in effect once, replaced by a later one


def objection_deadline(published_at: datetime) -> datetime:
    """One calendar month after publication, at the same time of day."""
    return published_at + _A_MONTH


def earliest_effective_at(published_at: datetime) -> datetime:
    """The soonest a version may take effect: a month and thirty days after publication,
    whichever is later (a month from 1 February is 28 days)."""
    return max(published_at + _A_MONTH, published_at + _THIRTY_DAYS)


def objections_open(deadline: datetime, now: datetime) -> bool:
    return now <= deadline


def state_of(answer: str | None, deadline: datetime, now: datetime) -> State:
    if answer is not None:
        return State(answer)
    return State.PENDING if objections_open(deadline, now) else State.DEEMED_ACCEPTED


def status_of(effective_at: datetime, in_force_at: datetime | None, now: datetime) -> Status:
    """``in_force_at``: when the kind's version in force now took effect (None: none)."""
    if effective_at > now:
        return Status.UPCOMING
    return Status.IN_FORCE if effective_at == in_force_at else Status.SUPERSEDED


def in_force_at(effective: Sequence[datetime], now: datetime) -> datetime | None:
    """When the version in force took effect, of a kind's versions' ``effective``."""
    past = [at for at in effective if at <= now]
    return max(past) if past else None
