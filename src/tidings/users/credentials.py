"""Changing one's own password: the current one, then a new one the policy accepts.

The new password may not be any of the last ``PASSWORD_HISTORY`` ones. A change ends
every other session of the user (someone who knew the old password may hold one),
lifts the temporary-password and expired-password gates, and is audited.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import select

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.storage.db import SYSTEM
from tidings.users.models import PasswordHistory, User
from tidings.users.passwords import (
    WeakPassword,
    check_new_password,
    hash_password,
    verify_password,
)
from tidings.users.service import EMAIL_FIELD, user_keys
from tidings.users.sessions import end_sessions_of
from tidings.web.errors import InvalidRequest, NotFound, TidingsError

if TYPE_CHECKING:
    from tidings.core.services import Services

PASSWORD_HISTORY = 5


class PasswordRefused(TidingsError):
    """A new password the policy refuses: ``422``, naming the rule, as the API promises."""

    status, code, title = 422, "weak_password", "Password refused"


async def change_password(rt: Services, *, user_id: str, session_id: str, current: str,
                          new: str) -> None:
    """Replace the user's password; ``InvalidRequest`` for a wrong current one,
    ``PasswordRefused`` for a new one the policy refuses. Nothing changes on an error."""
    user, earlier = await user_and_earlier_hashes(rt, user_id)
    if not await asyncio.to_thread(verify_password, user.password_hash, current):
        raise InvalidRequest("The current password is wrong.", code="wrong_password",
                             parameter="current_password")
    await replace_password(rt, user, earlier, new, keep_session=session_id)


async def replace_password(rt: Services, user: User, earlier: list[str], new: str, *,
                           keep_session: str | None) -> None:
    """Check ``new`` against the policy and the user's history, then store it; every
    session of the user but ``keep_session`` ends."""
    email = (await user_keys(rt, user)).decrypt(user.email_enc, field=EMAIL_FIELD)
    await _check(new, email, [user.password_hash, *earlier])
    await _store(rt, user, keep_session, await asyncio.to_thread(hash_password, new))


async def user_and_earlier_hashes(rt: Services, user_id: str) -> tuple[User, list[str]]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found")
        earlier = list((await session.scalars(
            select(PasswordHistory.password_hash).where(PasswordHistory.user_id == user_id)
            .order_by(PasswordHistory.created_at.desc()).limit(PASSWORD_HISTORY - 1))).all())
    return user, earlier


async def _check(password: str, email: str, previous: list[str]) -> None:
    try:
        # argon2 for each earlier password: about a second in all, off the event loop.
        await asyncio.to_thread(check_new_password, password, email=email,
                                previous_hashes=previous)
    except WeakPassword as exc:
        raise PasswordRefused(exc.detail, code="weak_password", rule=exc.rule,
                              parameter="new_password") from None


async def _store(rt: Services, user: User, session_id: str | None, hashed: str) -> None:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        row = await session.get(User, user.id, with_for_update=True)
        if row is None:
            raise NotFound("No such user.", code="user_not_found")
        session.add(PasswordHistory(id=new_id("pwh"), tenant_id=row.tenant_id,
                                    user_id=row.id, password_hash=row.password_hash,
                                    created_at=now))
        row.password_hash, row.password_changed_at = hashed, now
        row.password_temporary_until, row.updated_at = None, now
        await end_sessions_of(session, user_id=row.id, now=now, keep=session_id)
        if row.tenant_id is not None:
            await record(session, [audit_row(
                tenant=row.tenant_id, actor=Actor("user", row.id), action="user.password",
                table="users", row_id=row.id, fields=["password"], now=now)])
