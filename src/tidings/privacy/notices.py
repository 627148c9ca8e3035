"""Mail to the people of an account who answer data subject requests (its owners,
admins and compliance officers): a request forwarded by the operator, a deadline five
days away, something the person must be told. Queued in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.permissions import ROLE_PERMISSIONS, Permission
from tidings.audit.service import Actor
from tidings.mail.service import MailKind, queue_mail
from tidings.users.models import User, UserStatus

if TYPE_CHECKING:
    from tidings.core.services import Services

__all__ = ["queue_privacy_mail"]

_ANSWERING_ROLES = sorted(role.value for role, permissions in ROLE_PERMISSIONS.items()
                          if Permission.PRIVACY_MANAGE in permissions)


async def privacy_people(session: AsyncSession, account_id: str) -> Sequence[str]:
    """The ids of the account's active users who may manage privacy requests."""
    return list((await session.scalars(select(User.id).where(
        User.tenant_id == account_id, User.role.in_(_ANSWERING_ROLES),
        User.status == UserStatus.ACTIVE.value).order_by(User.created_at, User.id))).all())


async def queue_privacy_mail(rt: Services, session: AsyncSession, *, account_id: str,
                             subject: str, body: str, now: datetime, actor: Actor) -> int:
    """The mail to each of them; how many were queued (none: the account has nobody
    who logs in, and reads its requests over the API)."""
    people = await privacy_people(session, account_id)
    for user_id in people:
        await queue_mail(rt, session, kind=MailKind.PRIVACY, to_user_id=user_id,
                         account_id=account_id, subject=subject, body=body, now=now,
                         actor=actor)
    return len(people)
