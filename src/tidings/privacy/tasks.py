"""The privacy domain's work for the workers: data subject requests carried out
(``privacy.fulfil``, ``fulfilment.py``), their deadlines watched, expired bundles
deleted, and the erasure ledger replayed on this database."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from tidings.audit.service import SYSTEM_ACTOR, Actor, audit_row, record
from tidings.jobs.registry import JobRegistry
from tidings.privacy.deadlines import ALERT_BEFORE
from tidings.privacy.erasure import REPLAY_GRACE, replay_erasures
from tidings.privacy.fulfilment import fulfil_batch
from tidings.privacy.models import PrivacyBundle, PrivacyRequest
from tidings.privacy.notices import queue_privacy_mail
from tidings.privacy.requests import FULFIL_JOB, OPEN_STATUSES
from tidings.privacy.retention import apply_retention, due_accounts
from tidings.privacy.termination import due_purges, purge_account
from tidings.storage.db import SYSTEM

if TYPE_CHECKING:
    from tidings.core.services import Services

REPLAY_EVERY_ROUNDS = 20  # housekeeping rounds: every ten seconds
DEADLINES_EVERY_ROUNDS = 120  # every minute
RETENTION_EVERY_ROUNDS = 1200  # every ten minutes: the accounts a day past their last run
# An erasure of a person with a million messages takes a while: its lease is long.
FULFIL_LEASE_SECONDS = 900.0
_ALERTS_A_ROUND = 100
_DEADLINE_ACTOR = Actor("system", "privacy")


async def replay(rt: Services) -> None:
    await replay_erasures(rt.db, rt.vault, now=rt.clock.now(), grace=REPLAY_GRACE)


async def watch_deadlines(rt: Services) -> None:
    """Alert the account five days before a request is due (once per deadline: an
    extension alerts again), and delete bundles past their time."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        due_soon = (await session.scalars(select(PrivacyRequest).where(
            PrivacyRequest.status.in_(OPEN_STATUSES), PrivacyRequest.alerted_at.is_(None),
            PrivacyRequest.due_at <= now + ALERT_BEFORE,
        ).order_by(PrivacyRequest.due_at).limit(_ALERTS_A_ROUND))).all()
        for row in due_soon:
            row.alerted_at = now
            await queue_privacy_mail(rt, session, account_id=row.tenant_id, now=now,
                                     actor=_DEADLINE_ACTOR, subject=_alert_subject(row, now),
                                     body=_alert_body(row))
        expired = (await session.execute(select(PrivacyBundle.id, PrivacyBundle.tenant_id)
                                         .where(PrivacyBundle.expires_at <= now))).all()
        if expired:
            await session.execute(delete(PrivacyBundle).where(
                PrivacyBundle.id.in_([bundle_id for bundle_id, _ in expired])))
            await record(session, [audit_row(
                tenant=tenant, actor=_DEADLINE_ACTOR, action="delete", table="privacy_bundles",
                row_id=bundle_id, fields=["content"], now=now) for bundle_id, tenant in expired])


def _alert_subject(row: PrivacyRequest, now: datetime) -> str:
    if row.due_at <= now:
        return f"A {row.type} request is overdue"
    return f"A {row.type} request is due on {row.due_at.date().isoformat()}"


def _alert_body(row: PrivacyRequest) -> str:
    return (f"The {row.type} request {row.id}, received on "
            f"{row.received_at.date().isoformat()}, is due on "
            f"{row.due_at.isoformat(timespec='minutes')} (UTC). Answer it, or extend it "
            "with a reason before that date.\n")


async def apply_retention_daily(rt: Services) -> None:
    """Each account once a day, a few accounts a round."""
    for tenant in await due_accounts(rt, now=rt.clock.now()):
        await apply_retention(rt, tenant=tenant)


async def purge_due_accounts(rt: Services) -> None:
    """Terminated accounts whose six months are up, or whose client asked sooner."""
    for tenant in await due_purges(rt, now=rt.clock.now()):
        await purge_account(rt, tenant=tenant, actor=SYSTEM_ACTOR)


def register(registry: JobRegistry) -> None:
    registry.job(FULFIL_JOB, fulfil_batch, lease_seconds=lambda _settings: FULFIL_LEASE_SECONDS)
    registry.chore("erasure_replay", replay, every=REPLAY_EVERY_ROUNDS)
    registry.chore("privacy_deadlines", watch_deadlines, every=DEADLINES_EVERY_ROUNDS)
    registry.chore("retention", apply_retention_daily, every=RETENTION_EVERY_ROUNDS)
    registry.chore("account_purges", purge_due_accounts, every=RETENTION_EVERY_ROUNDS)
