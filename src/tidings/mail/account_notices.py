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
