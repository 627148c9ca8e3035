"""SMPP credentials of client accounts. Services flush, never commit.

SMPP 3.4 passwords are at most 8 characters, so they are hashed with argon2
(slow on purpose), never with the fast hash API keys use.
"""

from __future__ import annotations

import functools
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.smpp_gateway.models import SmppCredential
from tidings.web.errors import Conflict, InvalidRequest, NotFound

_HASHER = PasswordHasher()
_ALPHABET = string.ascii_letters + string.digits
SYSTEM_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
PASSWORD_LENGTH = 8  # the most SMPP 3.4 allows


@dataclass(frozen=True)
class NewCredential:
    credential: SmppCredential
    password: str  # shown once


async def do_create_credential(session: AsyncSession, *, tenant: str, system_id: str | None,
                               name: str, actor: Actor, now: datetime) -> NewCredential:
    system_id = system_id or f"t{secrets.token_hex(7)}"
    if SYSTEM_ID.fullmatch(system_id) is None:
        raise InvalidRequest("A system_id is 1 to 16 letters, digits, '-' or '_'.",
                             code="invalid_system_id")
    if await _by_system_id(session, system_id) is not None:
        raise Conflict(f"The system_id {system_id!r} is taken.", code="system_id_taken")
    password = "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))
    credential = SmppCredential(id=new_id("smc"), tenant_id=tenant, system_id=system_id,
                                password_hash=_HASHER.hash(password), name=name or "default",
                                created_at=now, revoked_at=None)
    session.add(credential)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table="smpp_credentials", row_id=credential.id,
                                     fields=["system_id", "name"], now=now)])
    return NewCredential(credential, password)


async def do_revoke_credential(session: AsyncSession, *, tenant: str, credential_id: str,
                               actor: Actor, now: datetime) -> SmppCredential:
    credential = await session.scalar(select(SmppCredential).where(
        SmppCredential.id == credential_id, SmppCredential.tenant_id == tenant))
    if credential is None:
        raise NotFound(f"No SMPP credential {credential_id!r} in this account.",
                       code="smpp_credential_not_found")
    if credential.revoked_at is None:
        credential.revoked_at = now
        await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                         table="smpp_credentials", row_id=credential.id,
                                         fields=["revoked_at"], now=now)])
    return credential


async def list_credentials(session: AsyncSession, *, tenant: str) -> list[SmppCredential]:
    rows = await session.scalars(select(SmppCredential).where(
        SmppCredential.tenant_id == tenant).order_by(SmppCredential.created_at))
    return list(rows.all())


async def has_active_credential(session: AsyncSession, *, tenant: str) -> bool:
    found = await session.scalar(select(SmppCredential.id).where(
        SmppCredential.tenant_id == tenant, SmppCredential.revoked_at.is_(None)).limit(1))
    return found is not None


@dataclass(frozen=True)
class BindCandidate:
    """What a bind is checked against: read in a short transaction, verified after it
    (argon2 takes a fifth of a second; no database connection should wait on it)."""

    credential_id: str
    tenant_id: str
    password_hash: str


async def find_bind_candidate(session: AsyncSession, *,
                              system_id: str) -> BindCandidate | None:
    """The active credential of this system_id, or None (malformed, unknown, revoked)."""
    if SYSTEM_ID.fullmatch(system_id) is None:
        return None
    credential = await _by_system_id(session, system_id)
    if credential is None or credential.revoked_at is not None:
        return None
    return BindCandidate(credential.id, credential.tenant_id, credential.password_hash)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash; slow on purpose, so call it on a thread."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def stand_in_hash() -> str:
    """A hash no password matches, to verify against when the system_id names no
    credential: an unknown id then costs as long as a known one, and timing does not
    tell which ids exist."""
    return _HASHER.hash(secrets.token_urlsafe(16))


async def _by_system_id(session: AsyncSession, system_id: str) -> SmppCredential | None:
    found: SmppCredential | None = await session.scalar(
        select(SmppCredential).where(SmppCredential.system_id == system_id))
    return found
