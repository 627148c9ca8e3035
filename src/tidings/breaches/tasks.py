"""The breach register's chore (BRE-2): every minute, the open breaches' clocks.

At 36 hours after the operator became aware of a breach not yet notified, every
member of staff is mailed (the escalation); at 48 hours it is overdue, and the staff
are paged: an ERROR log line ``breach_overdue`` (the breach's id only) that alerting
picks up, and a mail. Each happens once per breach, recorded on it (``escalated_at``,
``overdue_at``); a breach found already overdue is paged without an escalation first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select

from tidings.audit.service import Actor
from tidings.breaches.clock import DUE_AFTER, ESCALATE_AFTER, is_overdue
from tidings.breaches.models import Breach, BreachStatus
from tidings.breaches.notices import escalation_mail, page_mail
from tidings.core.logs import get_logger
from tidings.jobs.registry import JobRegistry
from tidings.mail.account_notices import mail_staff
from tidings.mail.service import MailKind, wake_sender
from tidings.storage.db import SYSTEM

if TYPE_CHECKING:
    from tidings.core.services import Services

log = get_logger("tidings.breaches")
CLOCK_EVERY_ROUNDS = 120  # housekeeping rounds: every minute
_A_ROUND = 100
_CLOCK_ACTOR = Actor("system", "breaches")


async def watch_clocks(rt: Services) -> None:
    """Escalate the open breaches 36 hours old, page for those 48 hours old."""
    now = rt.clock.now()
    escalated: list[tuple[str, int]] = []
    paged: list[tuple[str, int]] = []
    async with rt.db.transaction(tenant=SYSTEM) as session:
        due = (await session.scalars(select(Breach).where(
            Breach.status == BreachStatus.OPEN.value,
            or_(and_(Breach.escalated_at.is_(None), Breach.aware_at <= now - ESCALATE_AFTER),
                and_(Breach.overdue_at.is_(None), Breach.aware_at <= now - DUE_AFTER)),
        ).order_by(Breach.aware_at).limit(_A_ROUND).with_for_update(skip_locked=True))).all()
        for breach in due:
            if is_overdue(aware_at=breach.aware_at, running=True, now=now):
                subject, body = page_mail(breach)
                breach.overdue_at = now
                breach.escalated_at = breach.escalated_at or now
                mails = await mail_staff(rt, session, kind=MailKind.BREACH, subject=subject,
                                         body=body, actor=_CLOCK_ACTOR, now=now)
                paged.append((breach.id, len(mails)))
            else:
                subject, body = escalation_mail(breach)
                breach.escalated_at = now
                mails = await mail_staff(rt, session, kind=MailKind.BREACH, subject=subject,
                                         body=body, actor=_CLOCK_ACTOR, now=now)
                escalated.append((breach.id, len(mails)))
    for breach_id, mailed in escalated:
        log.warning("breach_escalated", breach_id=breach_id, staff_mailed=mailed)
    for breach_id, mailed in paged:
        log.error("breach_overdue", breach_id=breach_id, staff_mailed=mailed)
    if escalated or paged:
        wake_sender(rt)


def register(registry: JobRegistry) -> None:
    registry.chore("breach_clocks", watch_clocks, every=CLOCK_EVERY_ROUNDS)
