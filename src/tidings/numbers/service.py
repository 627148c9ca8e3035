"""Claim, list and release sender numbers; find the owner of a number."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.errors import Conflict, NotFound
from tidings.ids import new_id
from tidings.numbers.models import PhoneNumber


async def do_claim_number(session: AsyncSession, *, tenant: str, number: str, actor: Actor,
                          now: datetime) -> PhoneNumber:
    """Give ``number`` (already E.164) to the account; 409 if any account holds it."""
    row = PhoneNumber(id=new_id("num"), tenant_id=tenant, number=number, created_at=now)
    session.add(row)
    try:
        await session.flush()  # the unique number is the guard, whatever the tenant sees
    except IntegrityError:
        raise Conflict("That number already belongs to an account.", code="number_taken") from None
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table="phone_numbers", row_id=row.id, fields=["number"],
                                     now=now)])
    return row


async def list_numbers(session: AsyncSession, *, tenant: str) -> list[PhoneNumber]:
    rows = await session.scalars(select(PhoneNumber).where(PhoneNumber.tenant_id == tenant)
                                 .order_by(PhoneNumber.created_at))
    return list(rows.all())


async def do_release_number(session: AsyncSession, *, tenant: str, number_id: str,
                            actor: Actor, now: datetime) -> None:
    result = await session.execute(delete(PhoneNumber).where(
        PhoneNumber.id == number_id, PhoneNumber.tenant_id == tenant))
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"No number {number_id!r} in this account.", code="number_not_found")
    await record(session, [audit_row(tenant=tenant, actor=actor, action="delete",
                                     table="phone_numbers", row_id=number_id,
                                     fields=["number"], now=now)])


async def owner_of(session: AsyncSession, *, number: str) -> str | None:
    """The tenant that owns ``number`` (needs a system session: it looks across tenants)."""
    return await session.scalar(select(PhoneNumber.tenant_id)
                                .where(PhoneNumber.number == number))
