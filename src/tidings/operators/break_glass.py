"""Break-glass: an operator reads an account's message content only under a grant.

A grant names the account, the operator, a reason and an expiry (at most
``MAX_MINUTES``). Opening one and every read under it are audit events of the account,
which its owner sees with the reason (``GET /v1/account/break-glass``). Without a
grant an operator sees what support sees: metadata, numbers masked, no bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.operators.models import BreakGlassGrant
from tidings.storage.vault import TenantKeys
from tidings.web.errors import InvalidRequest

MAX_MINUTES = 240
MIN_REASON_CHARS = 10
REASON_FIELD = "break_glass_grants.reason"
TABLE = "break_glass_grants"


@dataclass(frozen=True)
class GrantView:
    id: str
    account_id: str
    operator: str
    reason: str
    created_at: datetime
    expires_at: datetime


async def open_grant(session: AsyncSession, *, keys: TenantKeys, account_id: str,
                     actor: Actor, reason: str, minutes: int, now: datetime) -> GrantView:
    """A new grant on a known account; ``InvalidRequest`` for a short reason or a long
    time. Audited in the account's trail."""
    reason = reason.strip()
    if len(reason) < MIN_REASON_CHARS:
        raise InvalidRequest(f"Give a reason of at least {MIN_REASON_CHARS} characters: the "
                             "account will read it.", code="reason_required",
                             parameter="reason")
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidRequest(f"A grant lasts 1 to {MAX_MINUTES} minutes.",
                             code="invalid_duration", parameter="minutes")
    grant = BreakGlassGrant(id=new_id("brg"), tenant_id=account_id, operator_id=actor.id,
                            reason_enc=keys.encrypt(reason, field=REASON_FIELD),
                            created_at=now, expires_at=now + timedelta(minutes=minutes))
    session.add(grant)
    await record(session, [audit_row(tenant=account_id, actor=actor, action="break_glass",
                                     table=TABLE, row_id=grant.id,
                                     fields=["reason", "expires_at"], now=now)])
    return _view(grant, keys)


async def active_grant(session: AsyncSession, *, account_id: str, operator_id: str,
                       now: datetime) -> BreakGlassGrant | None:
    return await session.scalar(
        select(BreakGlassGrant).where(BreakGlassGrant.tenant_id == account_id,
                                      BreakGlassGrant.operator_id == operator_id,
                                      BreakGlassGrant.expires_at > now)
        .order_by(BreakGlassGrant.expires_at.desc()).limit(1))


async def record_read(session: AsyncSession, *, grant: BreakGlassGrant, actor: Actor,
                      message_id: str, now: datetime) -> None:
    await record(session, [audit_row(tenant=grant.tenant_id, actor=actor,
                                     action="break_glass.read", table="messages",
                                     row_id=message_id, fields=["body", "to", "from"],
                                     now=now)])


async def list_grants(session: AsyncSession, *, keys: TenantKeys,
                      account_id: str) -> list[GrantView]:
    rows = await session.scalars(select(BreakGlassGrant)
                                 .where(BreakGlassGrant.tenant_id == account_id)
                                 .order_by(BreakGlassGrant.created_at.desc()))
    return [_view(g, keys) for g in rows]


def _view(grant: BreakGlassGrant, keys: TenantKeys) -> GrantView:
    return GrantView(grant.id, grant.tenant_id, grant.operator_id,
                     keys.decrypt(grant.reason_enc, field=REASON_FIELD), grant.created_at,
                     grant.expires_at)
