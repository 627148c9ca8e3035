"""Claims: an account proves it controls a number before it owns it.

A claim sends a one-time code to the number (or address) and stores only its keyed
hash; the account owns the number once it gives the code back. A claim of a number
another account holds is answered exactly like a claim of a free one, but no code is
sent and verification fails like a wrong code: a claim never tells who holds what.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.numbers.models import CLAIM_NUMBER_FIELD, NumberClaim, PhoneNumber
from tidings.numbers.service import do_assign_number
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, InvalidRequest, NotFound, TidingsError, TooManyRequests

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
CODE_DIGITS = 6
CODE_PATTERN = rf"^[0-9]{{{CODE_DIGITS}}}$"
CLAIM_ID_CHARS = 40
_NO_CODE = "-" * 64  # what a claim without a code "holds": no hash of a code is this


@dataclass(frozen=True)
class StartedClaim:
    claim: NumberClaim
    code: str | None  # to send; None when another account holds the number


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(keys: TenantKeys, claim_id: str, code: str) -> str:
    """A keyed hash (the account's index key), bound to the claim."""
    return keys.blind_index(code, field=f"number_claims.code:{claim_id}")


async def do_start_claim(session: AsyncSession, *, keys: TenantKeys, number: str,
                         holder: str | None, actor: Actor, now: datetime) -> StartedClaim:
    """Open a claim of ``number``; ``holder`` is the account that holds it, if any."""
    if holder == keys.tenant_id:
        raise Conflict("The account already holds that number.", code="number_taken")
    claim_id = new_id("ncl")
    code = new_code() if holder is None else None
    claim = NumberClaim(id=claim_id, tenant_id=keys.tenant_id,
                        number_enc=keys.encrypt(number, field=CLAIM_NUMBER_FIELD),
                        code_hash=code_hash(keys, claim_id, code) if code else None,
                        attempts=0, expires_at=now + CODE_TTL, created_at=now,
                        verified_at=None)
    session.add(claim)
    await record(session, [audit_row(tenant=keys.tenant_id, actor=actor, action="create",
                                     table="number_claims", row_id=claim_id, fields=["number"],
                                     now=now)])
    return StartedClaim(claim, code)


async def do_verify_claim(session: AsyncSession, *, keys: TenantKeys, platform: TenantKeys,
                          claim_id: str, code: str, actor: Actor,
                          now: datetime) -> PhoneNumber | TidingsError:
    """The number, now the account's; or the error to answer once the counted attempt
    is committed (a wrong code must count even though the request fails)."""
    claim = await _pending_claim(session, tenant=keys.tenant_id, claim_id=claim_id, now=now)
    claim.attempts += 1
    given = code_hash(keys, claim.id, code)
    if not hmac.compare_digest(claim.code_hash or _NO_CODE, given):
        await _audit(session, claim, actor, ["attempts"], now)
        left = MAX_ATTEMPTS - claim.attempts
        return InvalidRequest(f"That code is not right; {left} attempts left.",
                              code="invalid_code", attempts_left=left)
    claim.verified_at = now
    await _audit(session, claim, actor, ["attempts", "verified_at"], now)
    number = keys.decrypt(claim.number_enc, field=CLAIM_NUMBER_FIELD)
    return await do_assign_number(session, keys=keys, platform=platform, number=number,
                                  actor=actor, now=now)


async def _pending_claim(session: AsyncSession, *, tenant: str, claim_id: str,
                         now: datetime) -> NumberClaim:
    claim = await session.scalar(select(NumberClaim).where(
        NumberClaim.id == claim_id[:CLAIM_ID_CHARS], NumberClaim.tenant_id == tenant))
    if claim is None or len(claim_id) > CLAIM_ID_CHARS:
        raise NotFound(f"No claim {claim_id[:CLAIM_ID_CHARS]!r} in this account.",
                       code="claim_not_found")
    if claim.verified_at is not None:
        raise Conflict("That claim is complete already.", code="claim_verified")
    if now >= claim.expires_at:
        raise InvalidRequest("That claim expired; start a new one.", code="claim_expired")
    if claim.attempts >= MAX_ATTEMPTS:
        raise TooManyRequests("Too many wrong codes for that claim; start a new one.",
                              code="too_many_attempts")
    return claim


async def _audit(session: AsyncSession, claim: NumberClaim, actor: Actor, fields: list[str],
                 now: datetime) -> None:
    await record(session, [audit_row(tenant=claim.tenant_id, actor=actor, action="update",
                                     table="number_claims", row_id=claim.id, fields=fields,
                                     now=now)])
