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
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.accounts.permissions import OperatorRole, Role
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.messaging.addresses import AddressError, normalize_email
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.users.models import User, UserStatus
from tidings.users.passwords import hash_password, temporary_password
from tidings.users.sessions import end_sessions_of
from tidings.web.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from tidings.core.services import Services

TEMPORARY_PASSWORD_HOURS = 72
EMAIL_FIELD = "users.email"


@dataclass(frozen=True)
class NewUser:
    """A created user, with the temporary password that is shown this once."""

    id: str
    account_id: str | None  # None: the operator's staff
    email: str
    role: str
    temporary_password: str
    expires_at: datetime


def check_role(raw: str) -> Role:
    return _one_of(Role, raw, "role")


def check_operator_role(raw: str) -> OperatorRole:
    return _one_of(OperatorRole, raw, "staff role")


_R = TypeVar("_R", Role, OperatorRole)


def _one_of(roles: type[_R], raw: str, what: str) -> _R:
    try:
        return roles(raw)
    except ValueError:
        names = ", ".join(role.value for role in roles)
        raise InvalidRequest(f"There is no {what} {raw[:40]!r}; the roles are {names}.",
                             code="unknown_role", parameter="role") from None


def check_email(raw: str) -> str:
    try:
        return normalize_email(raw.strip())
    except AddressError as exc:
        raise InvalidRequest(f"The e-mail address is not valid: {exc}.", code=exc.code,
                             parameter="email") from None


async def user_keys(rt: Services, user: User) -> TenantKeys:
    """The keys a user's secrets are kept under: its account's, or the platform's."""
    if user.tenant_id is None:
        return await rt.vault.platform_keys()
    return await rt.vault.keys_for(user.tenant_id)


async def email_index(rt: Services, email: str) -> str:
    """The platform-wide blind index of an address, compared case-insensitively."""
    platform = await rt.vault.platform_keys()
    return platform.blind_index(email.lower(), field=EMAIL_FIELD)


async def create_user(rt: Services, *, account_id: str | None, email: str, role: str,
                      actor: Actor) -> NewUser:
    """A user of ``account_id``, or of the operator's staff when it is None (role
    ``operator``); ``InvalidRequest`` for a bad address or role, ``NotFound`` for an
    unknown account, ``Conflict`` for an address that has a user."""
    address = check_email(email)
    if account_id is None:
        chosen: Role | OperatorRole = check_operator_role(role)
        keys = await rt.vault.platform_keys()
    else:
        chosen = check_role(role)
        keys = await _account_keys(rt, account_id)
    index = await email_index(rt, address)
    now = rt.clock.now()
    password = temporary_password()
    hashed = await asyncio.to_thread(hash_password, password)  # argon2: ~0.2 s of CPU
    user = _new_user(account_id, address, chosen, keys, index, hashed, now)
    try:
        async with rt.db.transaction(tenant=account_id or SYSTEM) as session:
            session.add(user)
            await session.flush()
            await _record_creation(session, user, actor, now)
    except IntegrityError:
        raise Conflict("A user with this e-mail address exists.", code="email_taken",
                       parameter="email") from None
    return NewUser(user.id, account_id, address, chosen.value, password,
                   now + timedelta(hours=TEMPORARY_PASSWORD_HOURS))


async def _record_creation(session: AsyncSession, user: User, actor: Actor,
                           now: datetime) -> None:
    if user.tenant_id is None:
        # Staff belong to no account's trail, and the platform has none of its own yet
        # (audit events are chained per account).
        return
    await record(session, [audit_row(
        tenant=user.tenant_id, actor=actor, action="user.create", table="users",
        row_id=user.id, fields=["email", "role", "password"], now=now)])


def _new_user(account_id: str | None, email: str, role: Role | OperatorRole,
              keys: TenantKeys, index: str, password_hash: str, now: datetime) -> User:
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
    return [_view(u, keys) for u in rows]


async def user_view(rt: Services, user: User) -> UserView:
    return _view(user, await user_keys(rt, user))


def _view(user: User, keys: TenantKeys) -> UserView:
    return UserView(user.id, keys.decrypt(user.email_enc, field=EMAIL_FIELD), user.role,
                    user.status, user.mfa_enabled_at is not None,
                    user.password_temporary_until is not None, user.created_at)


async def get_user(rt: Services, *, account_id: str, user_id: str) -> UserView:
    """One user of the account; ``NotFound`` for another account's or an unknown id."""
    views = [v for v in await list_users(rt, account_id=account_id) if v.id == user_id]
    if not views:
        raise NotFound(f"No user {user_id[:60]!r} in this account.", code="user_not_found")
    return views[0]


async def update_user(rt: Services, *, account_id: str, user_id: str, role: str | None,
                      disabled: bool | None, actor: Actor) -> UserView:
    """Change a user's role or disable (or enable) it; disabling ends its sessions.

    The account keeps at least one active owner: the last cannot be demoted or disabled.
    """
    chosen = check_role(role) if role is not None else None
    now = rt.clock.now()
    async with rt.db.transaction(tenant=account_id) as session:
        user = await session.scalar(select(User).where(User.id == user_id,
                                                       User.tenant_id == account_id))
        if user is None:
            raise NotFound(f"No user {user_id[:60]!r} in this account.", code="user_not_found")
        changed = _apply(user, chosen, disabled)
        if changed:
            await _keep_an_owner(session, account_id)
            user.updated_at = now
            if user.status == UserStatus.DISABLED:
                await end_sessions_of(session, user_id=user.id, now=now)
            await record(session, [audit_row(tenant=account_id, actor=actor,
                                             action="user.update", table="users",
                                             row_id=user.id, fields=changed, now=now)])
    return await get_user(rt, account_id=account_id, user_id=user_id)


def _apply(user: User, role: Role | None, disabled: bool | None) -> list[str]:
    changed = []
    if role is not None and role.value != user.role:
        user.role = role.value
        changed.append("role")
    if disabled is not None:
        status = UserStatus.DISABLED if disabled else UserStatus.ACTIVE
        if status.value != user.status:
            user.status = status.value
            changed.append("status")
    return changed


async def _keep_an_owner(session: AsyncSession, account_id: str) -> None:
    await session.flush()
    owners = await session.scalar(select(func.count()).select_from(User).where(
        User.tenant_id == account_id, User.role == Role.OWNER.value,
        User.status == UserStatus.ACTIVE.value))
    if not owners:
        raise Conflict("The account must keep an active owner.", code="last_owner")
