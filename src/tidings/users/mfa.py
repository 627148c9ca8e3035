"""A user's second factor: enrolling a TOTP app, checking codes, recovery codes.

Enrolment is two steps. The first stores a new secret, encrypted, but not yet in
force, and shows it (as an ``otpauth://`` URI and a QR code) to the app; the second
takes a code from the app, which proves it holds the secret, and puts it in force
with ten recovery codes, shown once and kept as keyed hashes under the account's
keys (the platform's for staff), so erasing the account's keys voids them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.users import totp
from tidings.users.models import RecoveryCode, User
from tidings.users.service import user_keys
from tidings.web.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from tidings.core.services import Services

TOTP_SECRET_COLUMN = "users.mfa_secret"  # noqa: S105 (a column name)
RECOVERY_PURPOSE = "recovery_codes.code"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str

    @property
    def qr_data_uri(self) -> str:
        return totp.qr_data_uri(self.otpauth_uri)


async def begin_enrolment(rt: Services, *, user_id: str, email: str) -> Enrolment:
    """A new secret for the user's app; ``Conflict`` when a second factor is in force."""
    secret = totp.new_secret()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        user = await _user(session, user_id)
        if user.mfa_enabled_at is not None:
            raise Conflict("A second factor is already in force.", code="mfa_already_enabled")
        keys = await user_keys(rt, user)
        user.mfa_secret_enc = keys.encrypt(secret, field=TOTP_SECRET_COLUMN)
        user.updated_at = rt.clock.now()
    uri = totp.provisioning_uri(secret, account_name=email)
    return Enrolment(secret, uri, totp.qr_svg(uri))


async def pending_or_new_enrolment(rt: Services, *, user_id: str, email: str) -> Enrolment:
    """The secret waiting for its first code, else a new one: a page drawn again (a
    reload, a wrong code) shows the QR code the app has already scanned."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found")
        if user.mfa_enabled_at is None and user.mfa_secret_enc is not None:
            keys = await user_keys(rt, user)
            secret = keys.decrypt(user.mfa_secret_enc, field=TOTP_SECRET_COLUMN)
            uri = totp.provisioning_uri(secret, account_name=email)
            return Enrolment(secret, uri, totp.qr_svg(uri))
    return await begin_enrolment(rt, user_id=user_id, email=email)


async def confirm_enrolment(rt: Services, *, user_id: str, code: str) -> list[str]:
    """Put the pending secret in force with a code from the app; the recovery codes."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        user = await _user(session, user_id)
        if user.mfa_enabled_at is not None:
            raise Conflict("A second factor is already in force.", code="mfa_already_enabled")
        if user.mfa_secret_enc is None:
            raise Conflict("Start with POST /v1/auth/mfa/totp.", code="mfa_not_started")
        keys = await user_keys(rt, user)
        secret = keys.decrypt(user.mfa_secret_enc, field=TOTP_SECRET_COLUMN)
        step = totp.verify(secret, code, now=now, last_used_step=user.mfa_last_step)
        if step is None:
            raise InvalidRequest("The code is wrong; enter the one your app shows now.",
                                 code="invalid_code", parameter="code")
        user.mfa_enabled_at, user.mfa_last_step, user.updated_at = now, step, now
        codes = await _new_recovery_codes(session, user, keys, now)
        if user.tenant_id is not None:
            await record(session, [audit_row(
                tenant=user.tenant_id, actor=Actor("user", user.id), action="user.mfa_enable",
                table="users", row_id=user.id, fields=["mfa_secret", "recovery_codes"],
                now=now)])
    return codes


async def check_second_factor(rt: Services, *, user: User, code: str, now: datetime) -> bool:
    """Whether ``code`` (six digits from the app, or an unused recovery code) is good;
    a good one is used up."""
    keys = await user_keys(rt, user)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        if user.mfa_secret_enc is None:
            return False
        secret = keys.decrypt(user.mfa_secret_enc, field=TOTP_SECRET_COLUMN)
        fresh = await session.get(User, user.id, with_for_update=True)
        last = fresh.mfa_last_step if fresh is not None else user.mfa_last_step
        step = totp.verify(secret, code, now=now, last_used_step=last)
        if step is not None:
            await session.execute(update(User).where(User.id == user.id)
                                  .values(mfa_last_step=step))
            return True
        return await _use_recovery_code(session, user, keys, code)


async def _use_recovery_code(session: AsyncSession, user: User, keys: TenantKeys,
                             code: str) -> bool:
    if len(code) > 40:
        return False
    hashed = _recovery_hash(keys, code)
    used = await session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hashed,
        RecoveryCode.used.is_(False)).values(used=True))
    return bool(getattr(used, "rowcount", 0))


async def _new_recovery_codes(session: AsyncSession, user: User, keys: TenantKeys,
                              now: datetime) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = totp.new_recovery_codes()
    session.add_all(RecoveryCode(id=new_id("rcv"), tenant_id=user.tenant_id, user_id=user.id,
                                 code_hash=_recovery_hash(keys, code), used=False,
                                 created_at=now) for code in codes)
    return codes


def _recovery_hash(keys: TenantKeys, code: str) -> str:
    return keys.fingerprint(totp.normalise_recovery_code(code).encode(),
                            purpose=RECOVERY_PURPOSE)


async def _user(session: AsyncSession, user_id: str) -> User:
    user = await session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return user
