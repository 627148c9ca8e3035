"""The 48-hour clock of a breach (BRE-2): the processor tells each affected client
within 48 hours of becoming aware (the DPA), so the clock runs from ``aware_at``, not
from ``detected_at``.

At 36 hours the operator's staff are mailed (the escalation); at 48 hours a breach not
yet notified is overdue (at exactly 48:00, not a second later) and the staff are paged.
The clock stops when the breach is notified or closed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

__all__ = ["DUE_AFTER", "ESCALATE_AFTER", "due_at", "due_in", "escalation_at", "is_overdue"]

DUE_AFTER = timedelta(hours=48)
ESCALATE_AFTER = timedelta(hours=36)


def due_at(aware_at: datetime) -> datetime:
    return aware_at + DUE_AFTER


def escalation_at(aware_at: datetime) -> datetime:
    return aware_at + ESCALATE_AFTER


def is_overdue(*, aware_at: datetime, running: bool, now: datetime) -> bool:
    """Not notified (the clock still runs) and at or past the 48th hour."""
    return running and now >= due_at(aware_at)


def due_in(*, aware_at: datetime, running: bool, now: datetime) -> int | None:
    """Whole seconds left until the due time (negative once past it); None once the
    clock stopped."""
    if not running:
        return None
    return math.floor((due_at(aware_at) - now).total_seconds())
