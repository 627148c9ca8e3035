"""Log-in sessions: the bearer token a person gets, how long it lasts, what it may do yet.

A token is ``tds_`` and 256 random bits; only its SHA-256 is stored, which is enough
for a value nobody can guess (as for API keys) and gives nothing to whoever copies the
table. A session ends at ``expires_at``, when idle for longer than the idle limit,
at log-out, when its user is disabled, and, but for the one that made the change,
when the password changes.

A session can be *gated*: a user whose password is temporary or too old may only
change it (``password_change_required``); a user whose role needs a second factor
and has none may only enrol one (``mfa_required``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.permissions import Role
from tidings.core.ids import new_id
from tidings.core.settings import Settings
from tidings.users.models import User, UserSession, UserStatus
from tidings.web.errors import Unauthorized

TOKEN_PREFIX = "tds_"  # noqa: S105 (a prefix, not a secret)
_TOKEN = re.compile(r"tds_[A-Za-z0-9_-]{43}")
# last_seen_at is written at most this often: a busy session does not write per request.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105 (a problem code)
MFA_REQUIRED = "mfa_required"
# The roles whose users may do nothing but enrol until they have a second factor.
ROLES_THAT_NEED_MFA = frozenset({Role.OWNER, Role.ADMIN, Role.COMPLIANCE})


@dataclass(frozen=True)
class SessionPolicy:
    lifetime: timedelta
    idle: timedelta
    password_max_age: timedelta

    @classmethod
    def of(cls, settings: Settings) -> SessionPolicy:
        return cls(timedelta(hours=settings.session_hours),
                   timedelta(minutes=settings.session_idle_minutes),
                   timedelta(days=settings.password_max_age_days))


@dataclass(frozen=True)
class SessionUser:
    """An open session and what its user may do through it now."""

    session_id: str
    user_id: str
    account_id: str | None  # None: the operator's staff
    role: str
    gate: str | None
    last_seen_at: datetime


def is_session_token(raw: str) -> bool:
    return raw.startswith(TOKEN_PREFIX)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def gate_of(user: User, *, now: datetime, policy: SessionPolicy) -> str | None:
    """What the user must do before anything else, if anything."""
    if user.password_temporary_until is not None:
        return PASSWORD_CHANGE_REQUIRED
    if now - user.password_changed_at > policy.password_max_age:
        return PASSWORD_CHANGE_REQUIRED
    if needs_mfa(user.role) and user.mfa_enabled_at is None:
        return MFA_REQUIRED
    return None


def needs_mfa(role: str) -> bool:
    """Owners, admins, compliance officers and every operator user need a second factor."""
    return role in ROLES_THAT_NEED_MFA or role not in set(Role)


async def start_session(session: AsyncSession, *, user: User, now: datetime,
                        policy: SessionPolicy) -> tuple[str, UserSession]:
    """A new session of ``user``: the token, shown once, and its row."""
    token = new_token()
    row = UserSession(id=new_id("ses"), tenant_id=user.tenant_id, user_id=user.id,
                      token_hash=hash_token(token), created_at=now,
                      expires_at=now + policy.lifetime, last_seen_at=now)
    session.add(row)
    await session.flush()
    return token, row


async def end_session(session: AsyncSession, *, session_id: str, now: datetime) -> None:
    await session.execute(update(UserSession).where(UserSession.id == session_id,
                                                    UserSession.ended_at.is_(None))
                          .values(ended_at=now))


async def end_session_of_token(session: AsyncSession, *, token: str, now: datetime) -> None:
    """Log-out where the token is at hand rather than its session (a browser's cookie)."""
    await session.execute(update(UserSession).where(UserSession.token_hash == hash_token(token),
                                                    UserSession.ended_at.is_(None))
                          .values(ended_at=now))


async def end_sessions_of(session: AsyncSession, *, user_id: str, now: datetime,
                          keep: str | None = None) -> None:
    """End every open session of a user but ``keep`` (the one that made a change)."""
    query = update(UserSession).where(UserSession.user_id == user_id,
                                      UserSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep)
    await session.execute(query.values(ended_at=now))


async def load_session(session: AsyncSession, *, token: str, now: datetime,
                       policy: SessionPolicy) -> SessionUser:
    """The open session of ``token``; ``Unauthorized`` when there is none any more.

    ``session`` reads across tenants: a token names its user before the account is known.
    """
    if _TOKEN.fullmatch(token) is None:
        raise _invalid()
    found = (await session.execute(
        select(UserSession, User).join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == hash_token(token)))).first()
    if found is None:
        raise _invalid()
    row, user = found
    if row.ended_at is not None or user.status != UserStatus.ACTIVE:
        raise Unauthorized("The session has ended; log in again.", code="session_ended")
    if now >= row.expires_at or now - row.last_seen_at > policy.idle:
        raise Unauthorized("The session has expired; log in again.", code="session_expired")
    return SessionUser(row.id, user.id, user.tenant_id, user.role,
                       gate_of(user, now=now, policy=policy), row.last_seen_at)


async def touch_session(session: AsyncSession, *, session_id: str, now: datetime) -> None:
    await session.execute(update(UserSession).where(UserSession.id == session_id)
                          .values(last_seen_at=now))


def _invalid() -> Unauthorized:
    return Unauthorized("The session token is not valid.", code="invalid_session_token",
                        headers={"WWW-Authenticate": "Bearer"})
