"""The deadlines of a data subject request (Art. 12(3) GDPR), as the law counts them.

A month is a calendar month from the day of receipt: a request received on 31 January
is due on 28 (or 29) February, one received on 15 March on 15 April (the month-end
rule ``relativedelta`` applies). The controller may extend by up to two further months,
three from receipt in all, with a reason, and must tell the person before the first
deadline passes; the alert comes five days before whichever deadline is in force.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

from tidings.web.errors import InvalidRequest

__all__ = ["ALERT_BEFORE", "BUNDLE_LIFETIME", "check_extension", "due_at", "is_overdue",
           "longest_due_at"]

ALERT_BEFORE = timedelta(days=5)
# An access or portability bundle is kept this long for the account to download.
BUNDLE_LIFETIME = timedelta(days=7)
_FIRST_TERM, _LONGEST_TERM = relativedelta(months=1), relativedelta(months=3)


def due_at(received_at: datetime) -> datetime:
    """One calendar month after receipt, at the same time of day."""
    return received_at + _FIRST_TERM


def longest_due_at(received_at: datetime) -> datetime:
    """The latest an extension may reach: three calendar months after receipt."""
    return received_at + _LONGEST_TERM


def check_extension(*, received_at: datetime, current_due: datetime, wanted: datetime,
                    now: datetime) -> None:
    """Refuse an extension the law does not allow: after the deadline in force (the
    person must hear of it before), not later than it, or beyond three months."""
    if now >= current_due:
        raise InvalidRequest("The request is past its due date: an extension must be "
                             "notified before it.", code="extension_too_late")
    if wanted <= current_due:
        raise InvalidRequest("The new due date must be later than the current one.",
                             code="extension_not_later", parameter="due_at")
    if wanted > longest_due_at(received_at):
        raise InvalidRequest("An extension may reach at most three months after receipt "
                             f"({longest_due_at(received_at).date().isoformat()}).",
                             code="extension_too_long", parameter="due_at")


def is_overdue(*, due: datetime, open_: bool, now: datetime) -> bool:
    return open_ and now > due
