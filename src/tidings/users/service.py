"""Users of an account: created with a temporary password, found by their e-mail.

A new user gets a random temporary password, shown once to whoever created the user
and valid for ``TEMPORARY_PASSWORD_HOURS``; the first login must replace it. The
e-mail address is stored encrypted under the account's keys and found through the
platform's blind index, unique across the platform: a person logs in with an address
before anyone knows which account it belongs to.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tidings.accounts.models import Account
from tidings.accounts.permissions import Role
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.messaging.addresses import AddressError, normalize_email
from tidings.storage.vault import TenantKeys
from tidings.users.models import User, UserStatus
from tidings.users.passwords import hash_password, temporary_password
from tidings.web.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from tidings.core.services import Services

TEMPORARY_PASSWORD_HOURS = 72
EMAIL_FIELD = "users.email"


@dataclass(frozen=True)
class NewUser:
    """A created user, with the temporary password that is shown this once."""

    id: str
    account_id: str
    email: str
    role: str
    temporary_password: str
    expires_at: datetime


def check_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        roles = ", ".join(role.value for role in Role)
        raise InvalidRequest(f"There is no role {raw[:40]!r}; the roles are {roles}.",
                             code="unknown_role", parameter="role") from None


def check_email(raw: str) -> str:
    try:
        return normalize_email(raw.strip())
    except AddressError as exc:
        raise InvalidRequest(f"The e-mail address is not valid: {exc}.", code=exc.code,
                             parameter="email") from None


async def email_index(rt: Services, email: str) -> str:
    """The platform-wide blind index of an address, compared case-insensitively."""
    platform = await rt.vault.platform_keys()
    return platform.blind_index(email.lower(), field=EMAIL_FIELD)


async def create_user(rt: Services, *, account_id: str, email: str, role: str,
                      actor: Actor) -> NewUser:
    """A user of ``account_id``; ``InvalidRequest`` for a bad address or role,
    ``NotFound`` for an unknown account, ``Conflict`` for an address that has a user."""
    address, chosen = check_email(email), check_role(role)
    keys = await _account_keys(rt, account_id)
    index = await email_index(rt, address)
    now = rt.clock.now()
    password = temporary_password()
    hashed = await asyncio.to_thread(hash_password, password)  # argon2: ~0.2 s of CPU
    user = _new_user(account_id, address, chosen, keys, index, hashed, now)
    try:
        async with rt.db.transaction(tenant=account_id) as session:
            session.add(user)
            await session.flush()
            await record(session, [audit_row(
                tenant=account_id, actor=actor, action="user.create", table="users",
                row_id=user.id, fields=["email", "role", "password"], now=now)])
    except IntegrityError:
        raise Conflict("A user with this e-mail address exists.", code="email_taken",
                       parameter="email") from None
    return NewUser(user.id, account_id, address, chosen.value, password,
                   now + timedelta(hours=TEMPORARY_PASSWORD_HOURS))


def _new_user(account_id: str, email: str, role: Role, keys: TenantKeys, index: str,
              password_hash: str, now: datetime) -> User:
    return User(id=new_id("usr"), tenant_id=account_id,
                email_enc=keys.encrypt(email, field=EMAIL_FIELD), email_index=index,
                role=role.value, status=UserStatus.ACTIVE.value, password_hash=password_hash,
                password_temporary_until=now + timedelta(hours=TEMPORARY_PASSWORD_HOURS),
                password_changed_at=now, failed_logins=0, created_at=now, updated_at=now)


async def _account_keys(rt: Services, account_id: str) -> TenantKeys:
    """The account's keys; ``NotFound`` before any key is made for an unknown account."""
    async with rt.db.transaction(tenant=account_id, write=False) as session:
        found = await session.scalar(select(Account.id).where(Account.id == account_id))
    if found is None:
        raise NotFound(f"No account {account_id[:60]!r}.", code="account_not_found")
    return await rt.vault.keys_for(account_id)


@dataclass(frozen=True)
class UserView:
    """A user as an operator or an account's owner sees it: the address in clear."""

    id: str
    email: str
    role: str
    status: str
    mfa_enabled: bool
    must_change_password: bool
    created_at: datetime


async def list_users(rt: Services, *, account_id: str) -> list[UserView]:
    """The account's users, oldest first; ``NotFound`` for an unknown account."""
    keys = await _account_keys(rt, account_id)
    async with rt.db.transaction(tenant=account_id, write=False) as session:
        rows = (await session.scalars(select(User).where(User.tenant_id == account_id)
                                      .order_by(User.created_at, User.id))).all()
    return [UserView(u.id, keys.decrypt(u.email_enc, field=EMAIL_FIELD), u.role, u.status,
                     u.mfa_enabled_at is not None, u.password_temporary_until is not None,
                     u.created_at) for u in rows]
