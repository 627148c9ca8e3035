"""Numbers a trial account proves it controls, with a one-time code sent there.

The code is made, hashed and sent as a number claim's is (``numbers/claims.py``,
``numbers/codes.py``: a message of the platform's own account, which the trial cannot
read back); only its keyed hash is stored. A number verified once stays verified until
the account deletes it.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.numbers.claims import CODE_TTL, MAX_ATTEMPTS, new_code
from tidings.signup.models import VERIFIED_NUMBER_FIELD, VerifiedNumber
from tidings.signup.trials import number_index
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, InvalidRequest, NotFound, TidingsError, TooManyRequests

ID_CHARS = 40
TABLE = "verified_numbers"
# Each start sends an SMS at the platform's cost: a trial may not turn the code sender
# into a pump to numbers of its choosing (SMS pumping fraud).
STARTS_PER_HOUR = 10


def code_hash(keys: TenantKeys, row_id: str, code: str) -> str:
    return keys.blind_index(code, field=f"verified_numbers.code:{row_id}")


async def do_start(session: AsyncSession, *, keys: TenantKeys, number: str, actor: Actor,
                   now: datetime) -> tuple[VerifiedNumber, str]:
    """A pending verification of ``number`` (normalised) and the code to send to it."""
    await _check_rate(session, keys.tenant_id, now)
    index = number_index(keys, number)
    if await session.scalar(select(VerifiedNumber.id).where(
            VerifiedNumber.tenant_id == keys.tenant_id, VerifiedNumber.number_index == index,
            VerifiedNumber.verified_at.is_not(None))) is not None:
        raise Conflict("The account has verified that number already.",
                       code="number_verified")
    row_id, code = new_id("vnm"), new_code()
    row = VerifiedNumber(id=row_id, tenant_id=keys.tenant_id,
                         number_enc=keys.encrypt(number, field=VERIFIED_NUMBER_FIELD),
                         number_index=index, code_hash=code_hash(keys, row_id, code),
                         attempts=0, expires_at=now + CODE_TTL, verified_at=None,
                         created_at=now)
    session.add(row)
    await _audit(session, row, actor, "create", ["number"], now)
    return row, code


async def _check_rate(session: AsyncSession, tenant: str, now: datetime) -> None:
    started = await session.scalar(select(func.count()).select_from(VerifiedNumber).where(
        VerifiedNumber.tenant_id == tenant,
        VerifiedNumber.created_at > now - timedelta(hours=1)))
    if (started or 0) >= STARTS_PER_HOUR:
        raise TooManyRequests(f"At most {STARTS_PER_HOUR} numbers an hour; try again later.",
                              code="too_many_codes")


async def do_confirm(session: AsyncSession, *, keys: TenantKeys, row_id: str, code: str,
                     actor: Actor, now: datetime) -> VerifiedNumber | TidingsError:
    """The verified number; or the error to answer once the counted attempt is
    committed (a wrong code counts although the request fails)."""
    row = await get(session, tenant=keys.tenant_id, row_id=row_id)
    _check_pending(row, now)
    row.attempts += 1
    if not hmac.compare_digest(row.code_hash, code_hash(keys, row.id, code)):
        await _audit(session, row, actor, "update", ["attempts"], now)
        left = MAX_ATTEMPTS - row.attempts
        return InvalidRequest(f"That code is not right; {left} attempts left.",
                              code="invalid_code", attempts_left=left)
    row.verified_at = now
    await _audit(session, row, actor, "update", ["attempts", "verified_at"], now)
    return row


def _check_pending(row: VerifiedNumber, now: datetime) -> None:
    if row.verified_at is not None:
        raise Conflict("That number is verified already.", code="number_verified")
    if now >= row.expires_at:
        raise InvalidRequest("That code expired; start again.", code="code_expired")
    if row.attempts >= MAX_ATTEMPTS:
        raise TooManyRequests("Too many wrong codes; start again.", code="too_many_attempts")


async def get(session: AsyncSession, *, tenant: str, row_id: str) -> VerifiedNumber:
    """The account's row; another account's looks exactly like a missing one."""
    row = await session.scalar(select(VerifiedNumber).where(
        VerifiedNumber.id == row_id[:ID_CHARS], VerifiedNumber.tenant_id == tenant))
    if row is None or len(row_id) > ID_CHARS:
        raise NotFound(f"No verified number {row_id[:ID_CHARS]!r} in this account.",
                       code="verified_number_not_found")
    return row


async def list_all(session: AsyncSession, *, tenant: str) -> list[VerifiedNumber]:
    rows = await session.scalars(select(VerifiedNumber).where(
        VerifiedNumber.tenant_id == tenant).order_by(VerifiedNumber.created_at,
                                                     VerifiedNumber.id))
    return list(rows.all())


async def do_delete(session: AsyncSession, *, tenant: str, row_id: str, actor: Actor,
                    now: datetime) -> None:
    row = await get(session, tenant=tenant, row_id=row_id)
    await session.execute(delete(VerifiedNumber).where(VerifiedNumber.id == row.id,
                                                       VerifiedNumber.tenant_id == tenant))
    await _audit(session, row, actor, "delete", ["number"], now)


async def _audit(session: AsyncSession, row: VerifiedNumber, actor: Actor, action: str,
                 fields: list[str], now: datetime) -> None:
    await record(session, [audit_row(tenant=row.tenant_id, actor=actor, action=action,
                                     table=TABLE, row_id=row.id, fields=fields, now=now)])
