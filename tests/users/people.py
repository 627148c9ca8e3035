"""People for the tests: users with a known password, a second factor, a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import update

from tests.conftest import TEST_ACTOR
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users import passwords, totp
from tidings.users.mfa import TOTP_SECRET_COLUMN
from tidings.users.models import User
from tidings.users.passwords import hash_password
from tidings.users.service import create_user, user_keys
from tidings.users.sessions import SessionPolicy, start_session

PASSWORD = "Quiet-Harbour-Lantern-42"
_HASHES: dict[int, str] = {}  # argon2 once per test process and hasher, not per user


def _password_hash() -> str:
    """PASSWORD's hash under the hasher in use (tests/conftest.py may swap it)."""
    hasher = id(passwords._HASHER)
    if hasher not in _HASHES:
        _HASHES[hasher] = hash_password(PASSWORD)
    return _HASHES[hasher]


@dataclass(frozen=True)
class Person:
    user_id: str
    email: str
    password: str
    totp_secret: str | None

    def code(self, now: datetime) -> str:
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).at(now)


async def person(rt: Runtime, account_id: str | None, role: str, *,
                 email: str | None = None, mfa: bool = True) -> Person:
    """A user who chose ``PASSWORD`` and, with ``mfa``, enrolled an authenticator app;
    ``account_id`` None: a member of the operator's staff."""
    address = email or f"{role}.{(account_id or 'staff')[-8:]}@example.com"
    made = await create_user(rt, account_id=account_id, email=address, role=role,
                             actor=TEST_ACTOR)
    secret = totp.new_secret() if mfa else None
    async with rt.db.transaction(tenant=SYSTEM) as session:
        user = await session.get(User, made.id)
        assert user is not None
        keys = await user_keys(rt, user)
        now = rt.clock.now()
        await session.execute(update(User).where(User.id == made.id).values(
            password_hash=_password_hash(), password_temporary_until=None, password_changed_at=now,
            mfa_secret_enc=keys.encrypt(secret, field=TOTP_SECRET_COLUMN) if secret else None,
            mfa_enabled_at=now if secret else None))
    return Person(made.id, made.email, PASSWORD, secret)


async def session_headers(rt: Runtime, who: Person) -> dict[str, str]:
    """A session of ``who`` as if logged in (no argon2, no code): its bearer header."""
    async with rt.db.transaction(tenant=SYSTEM) as session:
        user = await session.get(User, who.user_id)
        assert user is not None
        token, _ = await start_session(session, user=user, now=rt.clock.now(),
                                       policy=SessionPolicy.of(rt.settings))
    return {"Authorization": f"Bearer {token}"}
