"""Which of a message's status changes an account wants POSTed, and where.

By default every change is (``queued``, ``sent``, ``delivered``…). An account may
narrow that to some statuses, like Kannel's ``dlr-mask`` or the status-callback
events of other platforms: ``final`` stands for every final status, so
``["final"]`` means one webhook per message, with its outcome. The choice covers
both the account's webhook URL and each message's ``status_callback``; inbound
messages are always POSTed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from tidings.messaging.lifecycle import FINAL, Status
from tidings.web.errors import InvalidRequest

FINAL_ALIAS = "final"
STATUSES = frozenset(Status) - {Status.RECEIVED}  # what a message.status webhook can carry
CHOICES = (*sorted(STATUSES), FINAL_ALIAS)


class _Account(Protocol):
    webhook_url: str | None
    webhook_statuses: str | None


@dataclass(frozen=True, slots=True)
class Subscription:
    """An account's webhook URL and the statuses it wants (None: every change)."""

    url: str | None = None
    statuses: frozenset[str] | None = None

    @classmethod
    def stored(cls, url: str | None, statuses: str | None) -> Subscription:
        """From the account's columns."""
        return cls(url, frozenset(statuses.split(",")) if statuses is not None else None)

    @classmethod
    def of(cls, account: _Account | None) -> Subscription:
        if account is None:
            return NO_SUBSCRIPTION
        return cls.stored(account.webhook_url, account.webhook_statuses)

    def urls_for(self, status: str, status_callback: str | None) -> tuple[str | None, ...]:
        """Where a change to ``status`` goes: nowhere when the account does not want it."""
        if self.statuses is not None and status not in self.statuses:
            return ()
        return (status_callback, self.url)


NO_SUBSCRIPTION = Subscription()  # an account without a URL: message status_callbacks only


def statuses_column(chosen: Iterable[str] | None) -> str | None:
    """Checked and stored form of a choice (``final`` spelled out); None keeps every change."""
    if chosen is None:
        return None
    names = list(chosen)
    unknown = sorted(set(names) - set(CHOICES))
    if unknown or not names:
        raise InvalidRequest(
            f"webhook_statuses takes one or more of {', '.join(CHOICES)}"
            + (f"; not {', '.join(map(repr, unknown))}." if unknown else "."),
            code="invalid_webhook_statuses")
    wanted = set(names) - {FINAL_ALIAS}
    if FINAL_ALIAS in names:
        wanted |= FINAL & STATUSES
    return ",".join(sorted(wanted))


def statuses_out(stored: str | None) -> list[str] | None:
    return sorted(stored.split(",")) if stored is not None else None
