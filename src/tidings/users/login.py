"""Logging in: a password, then a second factor when the user has one.

A wrong address, a wrong password, a disabled or a locked user all get the same
``401 invalid_credentials`` after the same work (one argon2 verification), so the
answer says nothing about which addresses have users. ``login_lock_failures`` failed
attempts in a row lock the user for ``login_lock_minutes``, doubled for each further
run of failures; a success within a day of a lock does not forget it. Every attempt on
a known user is an audit event of its account, which its owner reads with
``GET /v1/audit-events``.

With a second factor, the password step answers with a *challenge*: the user id, an
expiry and the password's change time, signed with a platform key. It holds nothing
secret and lives five minutes; wrong codes count as failed log-ins.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.users.mfa import check_second_factor
from tidings.users.models import User, UserStatus
from tidings.users.passwords import hash_password, needs_rehash, verify_password
from tidings.users.service import email_index
from tidings.users.sessions import SessionPolicy, start_session
from tidings.users.user_tokens import TokenRefused, UserToken, make_token, read_token
from tidings.web.errors import Unauthorized

if TYPE_CHECKING:
    from tidings.core.services import Services

CHALLENGE_LIFETIME = timedelta(minutes=5)
CHALLENGE_PURPOSE = "users.login_challenge"
MAX_LOCK = timedelta(days=1)
LOCK_MEMORY = timedelta(days=1)  # a lock this long ago no longer makes the next one longer
# Verified when the address has no user, so that a miss costs what a hit costs.
_DECOY_HASH = hash_password("Decoy password for addresses without a user 7")


@dataclass(frozen=True)
class LoggedIn:
    token: str
    expires_at: datetime
    user: User


@dataclass(frozen=True)
class SecondFactorNeeded:
    challenge: str


def invalid_credentials() -> Unauthorized:
    return Unauthorized("The e-mail address or the password is wrong.",
                        code="invalid_credentials")


async def log_in(rt: Services, *, email: str, password: str) -> LoggedIn | SecondFactorNeeded:
    """The password step; ``Unauthorized`` (always the same) when it fails."""
    index = await email_index(rt, email.strip())
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.scalar(select(User).where(User.email_index == index))
    stored = user.password_hash if user is not None else _DECOY_HASH
    matches = await asyncio.to_thread(verify_password, stored, password)
    now = rt.clock.now()
    if user is None or not _may_try(user, now):
        raise invalid_credentials()
    if not matches:
        await _failed(rt, user, now, reason="password")
        raise invalid_credentials()
    if user.password_temporary_until is not None and now >= user.password_temporary_until:
        raise Unauthorized("The temporary password has expired; ask for a new one.",
                           code="temporary_password_expired")
    if needs_rehash(user.password_hash):
        await _rehash(rt, user, password)
    if user.mfa_enabled_at is not None:
        platform = await rt.vault.platform_keys()
        return SecondFactorNeeded(make_token(platform, purpose=CHALLENGE_PURPOSE, user=user,
                                             expires_at=now + CHALLENGE_LIFETIME))
    return await _succeeded(rt, user, now)


async def complete_second_factor(rt: Services, *, challenge: str, code: str) -> LoggedIn:
    """The second step: a TOTP code or a recovery code for the challenge's user."""
    now = rt.clock.now()
    platform = await rt.vault.platform_keys()
    token = _verified_challenge(platform, challenge, now)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.get(User, token.user_id)
    if (user is None or not _may_try(user, now) or user.mfa_enabled_at is None
            or not token.still_valid_for(platform, user)):
        raise _invalid_code()
    if not await check_second_factor(rt, user=user, code=code, now=now):
        await _failed(rt, user, now, reason="second_factor")
        raise _invalid_code()
    return await _succeeded(rt, user, now)


# Failed logins count against the client's address too (web/ratelimits.py): past the
# limit, a login from there is refused before the e-mail or the code is looked at.
FAILED_LOGIN_CODES = frozenset({"invalid_credentials", "invalid_code"})


@contextlib.asynccontextmanager
async def failures_counted(rt: Services, address: str) -> AsyncIterator[None]:
    """Around a log-in step from ``address``: refused while the address is blocked, and a
    wrong password or code counted against it (the API and the portal alike)."""
    await rt.rate_limits.refuse_blocked_login(address)
    try:
        yield
    except Unauthorized as refused:
        if refused.code in FAILED_LOGIN_CODES:
            await rt.rate_limits.note_failed_login(address)
        raise


def _may_try(user: User, now: datetime) -> bool:
    if user.status != UserStatus.ACTIVE:
        return False
    return user.locked_until is None or now >= user.locked_until


async def _failed(rt: Services, user: User, now: datetime, *, reason: str) -> None:
    failures = user.failed_logins + 1
    limit = rt.settings.login_lock_failures
    locked_until = None
    if failures % limit == 0:
        runs = failures // limit
        lock = timedelta(minutes=rt.settings.login_lock_minutes) * 2 ** (runs - 1)
        locked_until = now + min(lock, MAX_LOCK)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        values: dict[str, object] = {"failed_logins": User.failed_logins + 1}
        if locked_until is not None:
            values["locked_until"] = locked_until
        await session.execute(update(User).where(User.id == user.id).values(**values))
        await _audit(session, user, now, "user.login_failed", [reason])
        if locked_until is not None:
            await _audit(session, user, now, "user.locked", ["locked_until"])


async def _succeeded(rt: Services, user: User, now: datetime) -> LoggedIn:
    policy = SessionPolicy.of(rt.settings)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(update(User).where(User.id == user.id)
                              .values(failed_logins=_remembered_failures(rt, user, now)))
        token, row = await start_session(session, user=user, now=now, policy=policy)
        await _audit(session, user, now, "user.login", ["session"])
    return LoggedIn(token, row.expires_at, user)


def _remembered_failures(rt: Services, user: User, now: datetime) -> int:
    """What a success leaves of the failure count: the runs that ended in a lock within
    the last day, so that the next lock is longer still; else nothing."""
    if user.locked_until is None or now - user.locked_until > LOCK_MEMORY:
        return 0
    limit = rt.settings.login_lock_failures
    return (user.failed_logins // limit) * limit


async def _rehash(rt: Services, user: User, password: str) -> None:
    """Hash the password again with today's parameters (it was just verified)."""
    hashed = await asyncio.to_thread(hash_password, password)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(update(User).where(User.id == user.id)
                              .values(password_hash=hashed))


async def _audit(session: AsyncSession, user: User, now: datetime, action: str,
                 fields: list[str]) -> None:
    if user.tenant_id is None:
        return  # staff: the operator's own records, not an account's (not yet kept)
    await record(session, [audit_row(tenant=user.tenant_id, actor=Actor("user", user.id),
                                     action=action, table="users", row_id=user.id,
                                     fields=fields, now=now)])


# --- The signed challenge between the two steps ----------------------------------------


def _verified_challenge(keys: TenantKeys, challenge: str, now: datetime) -> UserToken:
    try:
        return read_token(keys, purpose=CHALLENGE_PURPOSE, token=challenge, now=now)
    except TokenRefused as refused:
        if refused.expired:
            raise Unauthorized("The log-in has expired; start again with the password.",
                               code="challenge_expired") from None
        raise _invalid_challenge() from None


def _invalid_challenge() -> Unauthorized:
    return Unauthorized("The log-in challenge is not valid; start again with the password.",
                        code="invalid_challenge")


def _invalid_code() -> Unauthorized:
    return Unauthorized("The code is wrong or was used already.", code="invalid_code")


