"""Mail the platform sends an account's owners when something happens to the account:
its suspension, with the reason, in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.accounts.permissions import Role
from tidings.audit.service import Actor
from tidings.mail.service import MailKind, queue_mail
from tidings.users.models import User, UserStatus

if TYPE_CHECKING:
    from tidings.core.services import Services


async def owners_of(session: AsyncSession, account_id: str) -> Sequence[str]:
    """The user ids of the account's active owners."""
    return list((await session.scalars(select(User.id).where(
        User.tenant_id == account_id, User.role == Role.OWNER.value,
        User.status == UserStatus.ACTIVE.value).order_by(User.created_at, User.id))).all())


async def staff_members(session: AsyncSession) -> list[str]:
    """The ids of the operator's active staff (users of no account)."""
    return list((await session.scalars(select(User.id).where(
        User.tenant_id.is_(None), User.status == UserStatus.ACTIVE.value)
        .order_by(User.created_at, User.id))).all())


async def mail_staff(rt: Services, session: AsyncSession, *, kind: MailKind, subject: str,
                     body: str, actor: Actor, now: datetime) -> list[str]:
    """A mail to every active member of staff, in ``session`` (opened as ``SYSTEM``);
    the mails' ids."""
    return [await queue_mail(rt, session, kind=kind, subject=subject, body=body, now=now,
                             actor=actor, to_user_id=user_id)
            for user_id in await staff_members(session)]


async def queue_owner_notice(rt: Services, session: AsyncSession, *, account_id: str,
                             kind: MailKind, subject: str, body: str, actor: Actor,
                             now: datetime, audit_action: str = "mail.queue") -> list[str]:
    """The same mail to each of the account's active owners; the mail ids, the proof
    that the notice was sent (empty: the account has no active owner)."""
    return [await queue_mail(rt, session, kind=kind, subject=subject, body=body, now=now,
                             actor=actor, to_user_id=owner, account_id=account_id,
                             audit_action=audit_action)
            for owner in await owners_of(session, account_id)]


async def queue_suspension_notice(rt: Services, session: AsyncSession, *, account: Account,
                                  reason: str | None, actor: Actor, now: datetime) -> int:
    """A ``suspension`` mail to each active owner; how many were queued."""
    owners = await owners_of(session, account.id)
    body = (f"Your account {account.name!r} ({account.id}) is suspended: it and every "
            "account below it can no longer send, over the API or SMPP, until the "
            "suspension is lifted. You can still log in and read.\n\n"
            f"Reason: {reason or 'none given'}\n")
    for user_id in owners:
        await queue_mail(rt, session, kind=MailKind.SUSPENSION, to_user_id=user_id,
                         account_id=account.id, subject="Your Tidings account is suspended",
                         body=body, now=now, actor=actor)
    return len(owners)
