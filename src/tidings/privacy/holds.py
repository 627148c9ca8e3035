"""Legal holds: a person's data kept, whatever they ask, while a claim or an
investigation needs it (Art. 17(3)(e) GDPR). An erasure that meets a hold touches
nothing and ends ``blocked_legal_hold`` with the hold's basis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, actor_label, audit_row, record
from tidings.core.ids import new_id
from tidings.privacy.models import LegalHold
from tidings.web.errors import Conflict, InvalidRequest, NotFound

__all__ = ["active_hold", "do_place_hold", "do_release_hold", "list_holds"]

_TABLE = "legal_holds"


async def do_place_hold(session: AsyncSession, *, tenant: str, index: str, basis: str,
                        actor: Actor, now: datetime) -> LegalHold:
    basis = basis.strip()
    if not basis:
        raise InvalidRequest("A legal hold needs its basis.", code="basis_missing",
                             parameter="basis")
    if len(basis) > 500:
        raise InvalidRequest("The basis is longer than 500 characters.",
                             code="basis_too_long", parameter="basis")
    if await active_hold(session, tenant=tenant, index=index) is not None:
        raise Conflict("This person is already under a legal hold.", code="hold_exists")
    hold = LegalHold(id=new_id("hold"), tenant_id=tenant, subject_index=index, basis=basis,
                     created_by=actor_label(actor), created_at=now)
    session.add(hold)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table=_TABLE, row_id=hold.id,
                                     fields=["subject", "basis"], now=now)])
    return hold


async def do_release_hold(session: AsyncSession, *, tenant: str, hold_id: str,
                          actor: Actor, now: datetime) -> LegalHold:
    hold = await session.scalar(select(LegalHold).where(
        LegalHold.tenant_id == tenant, LegalHold.id == hold_id).with_for_update())
    if hold is None:
        raise NotFound("There is no such legal hold.", code="legal_hold_not_found")
    if hold.released_at is not None:
        raise Conflict("The legal hold is released already.", code="hold_released")
    hold.released_at, hold.released_by = now, actor_label(actor)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                     table=_TABLE, row_id=hold.id, fields=["released_at"],
                                     now=now)])
    return hold


async def active_hold(session: AsyncSession, *, tenant: str, index: str) -> LegalHold | None:
    return await session.scalar(select(LegalHold).where(
        LegalHold.tenant_id == tenant, LegalHold.subject_index == index,
        LegalHold.released_at.is_(None)).limit(1))


async def list_holds(session: AsyncSession, *, tenant: str) -> Sequence[LegalHold]:
    return (await session.scalars(select(LegalHold).where(LegalHold.tenant_id == tenant)
                                  .order_by(LegalHold.created_at, LegalHold.id))).all()
