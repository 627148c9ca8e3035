"""A forgotten password: a link by mail, then a new password.

Asking always gets the same answer, whether or not the address has a user, so the
form says nothing about who has an account. A user who has one is mailed a token
signed with a platform key, valid for ``RESET_LIFETIME`` and once: setting a password
voids it (``users/user_tokens.py``). The new password follows the policy and ends
every session of the user; a locked user is unlocked, since it proved the mailbox.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from tidings.audit.service import Actor
from tidings.mail.service import MailKind, queue_mail, wake_sender
from tidings.storage.db import SYSTEM
from tidings.users.credentials import replace_password, user_and_earlier_hashes
from tidings.users.models import User, UserStatus
from tidings.users.service import email_index
from tidings.users.user_tokens import TokenRefused, make_token, read_token
from tidings.web.errors import InvalidRequest

if TYPE_CHECKING:
    from tidings.core.services import Services

RESET_LIFETIME = timedelta(hours=1)
RESET_PURPOSE = "users.password_reset"


async def request_reset(rt: Services, *, email: str) -> None:
    """Mail a reset token to the address's user, if it has an active one."""
    index = await email_index(rt, email.strip())
    now = rt.clock.now()
    platform = await rt.vault.platform_keys()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        user = await session.scalar(select(User).where(User.email_index == index))
        if user is None or user.status != UserStatus.ACTIVE:
            return
        token = make_token(platform, purpose=RESET_PURPOSE, user=user,
                           expires_at=now + RESET_LIFETIME)
        await queue_mail(rt, session, kind=MailKind.PASSWORD_RESET, to_user_id=user.id,
                         account_id=user.tenant_id, subject="Reset your Tidings password",
                         body=_body(token), now=now, actor=Actor("user", user.id),
                         audit_action="user.reset_asked")
    wake_sender(rt)


async def complete_reset(rt: Services, *, token: str, new_password: str) -> None:
    """Set the new password of the token's user; ``InvalidRequest`` for a bad, used or
    expired token, ``PasswordRefused`` for a password the policy refuses."""
    platform = await rt.vault.platform_keys()
    try:
        content = read_token(platform, purpose=RESET_PURPOSE, token=token,
                             now=rt.clock.now())
    except TokenRefused as refused:
        raise _refused(expired=refused.expired) from None
    user, earlier = await user_and_earlier_hashes(rt, content.user_id)
    if not content.still_valid_for(platform, user) or user.status != UserStatus.ACTIVE:
        raise _refused(expired=False)
    await replace_password(rt, user, earlier, new_password, keep_session=None)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(update(User).where(User.id == user.id)
                              .values(failed_logins=0, locked_until=None))


def _body(token: str) -> str:
    hours = int(RESET_LIFETIME.total_seconds() // 3600)
    return ("Someone asked to reset the password of your Tidings login. If it was not "
            "you, ignore this mail: nothing changes.\n\n"
            f"Within {hours} hour(s), send this token with your new password to "
            "POST /v1/auth/password-reset/confirm {\"token\", \"new_password\"}:\n\n"
            f"{token}\n")


def _refused(*, expired: bool) -> InvalidRequest:
    if expired:
        return InvalidRequest("The reset link has expired; ask for a new one.",
                              code="reset_token_expired", parameter="token")
    return InvalidRequest("The reset link is not valid or was used already.",
                          code="invalid_reset_token", parameter="token")
