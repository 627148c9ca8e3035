"""Assign, list, release and point sender numbers; find the owner of a number.

Every number is stored encrypted under its account's key; ``number_index`` (a blind
index under the platform's key, see ``numbers.models``) keeps a number to one account
and finds its owner.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.messaging.addresses import AddressError, normalize_e164, normalize_email
from tidings.numbers.models import NUMBER_FIELD, PhoneNumber
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, InvalidRequest, NotFound

NUMBER_ID_CHARS = 40


def normalize_number(raw: str) -> str:
    """A number in E.164 or an email address (lower-cased domain); 400 otherwise."""
    try:
        return (normalize_email if "@" in raw else normalize_e164)(raw)
    except AddressError as exc:
        raise InvalidRequest(str(exc), code=exc.code) from None


_FORMATTED_NUMBER = re.compile(r"\+[0-9][0-9 ().-]*")


def configured_number(raw: str, configured: Collection[str]) -> str | None:
    """``raw`` as ``+<digits>`` if it is one of the ``configured`` business numbers (a
    WhatsApp connector's display number), which an account may own even when no
    numbering plan knows it; None otherwise."""
    if not _FORMATTED_NUMBER.fullmatch(raw.strip()):
        return None
    number = "+" + "".join(c for c in raw if c.isdigit())
    return number if number in configured else None


def number_index(platform: TenantKeys, number: str) -> str:
    """The number's blind index under the platform's key: the same for every account."""
    return platform.blind_index(number, field=NUMBER_FIELD)


async def do_assign_number(session: AsyncSession, *, keys: TenantKeys, platform: TenantKeys,
                           number: str, actor: Actor, now: datetime) -> PhoneNumber:
    """Give ``number`` (already normalised) to the account of ``keys``; 409 if any
    account holds it. Callers decide who may: the operator, or a verified claim."""
    row = PhoneNumber(id=new_id("num"), tenant_id=keys.tenant_id,
                      number_enc=keys.encrypt(number, field=NUMBER_FIELD),
                      number_index=number_index(platform, number), webhook_url=None,
                      created_at=now)
    session.add(row)
    try:
        await session.flush()  # the unique index is the guard, across every tenant
    except IntegrityError:
        raise Conflict("That number already belongs to an account.", code="number_taken") from None
    await record(session, [audit_row(tenant=keys.tenant_id, actor=actor, action="create",
                                     table="phone_numbers", row_id=row.id, fields=["number"],
                                     now=now)])
    return row


async def list_numbers(session: AsyncSession, *, tenant: str) -> list[PhoneNumber]:
    rows = await session.scalars(select(PhoneNumber).where(PhoneNumber.tenant_id == tenant)
                                 .order_by(PhoneNumber.created_at, PhoneNumber.id))
    return list(rows.all())


async def get_number(session: AsyncSession, *, tenant: str, number_id: str) -> PhoneNumber:
    """The account's number, or a 404 that another account's number looks exactly like."""
    row = await session.scalar(select(PhoneNumber).where(
        PhoneNumber.id == number_id[:NUMBER_ID_CHARS], PhoneNumber.tenant_id == tenant))
    if row is None or len(number_id) > NUMBER_ID_CHARS:
        raise NotFound(f"No number {number_id[:NUMBER_ID_CHARS]!r} in this account.",
                       code="number_not_found")
    return row


async def do_set_webhook_url(session: AsyncSession, *, tenant: str, number_id: str,
                             url: str | None, actor: Actor, now: datetime) -> PhoneNumber:
    """Where inbound messages to this number are POSTed (None: the account's URL)."""
    row = await get_number(session, tenant=tenant, number_id=number_id)
    if row.webhook_url != url:
        row.webhook_url = url
        await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                         table="phone_numbers", row_id=row.id,
                                         fields=["webhook_url"], now=now)])
    return row


async def do_release_number(session: AsyncSession, *, tenant: str, number_id: str,
                            actor: Actor, now: datetime) -> None:
    row = await get_number(session, tenant=tenant, number_id=number_id)
    await session.execute(delete(PhoneNumber).where(
        PhoneNumber.id == row.id, PhoneNumber.tenant_id == tenant))
    await record(session, [audit_row(tenant=tenant, actor=actor, action="delete",
                                     table="phone_numbers", row_id=row.id,
                                     fields=["number"], now=now)])


@dataclass(frozen=True)
class Owner:
    """Who takes messages to a number, and where the number's own webhooks go."""

    tenant: str
    webhook_url: str | None


async def owner_of(session: AsyncSession, *, index: str) -> Owner | None:
    """The owner of the number whose ``number_index`` is ``index`` (needs a system
    session: it looks across tenants)."""
    row = (await session.execute(select(PhoneNumber.tenant_id, PhoneNumber.webhook_url)
                                 .where(PhoneNumber.number_index == index))).first()
    return Owner(row[0], row[1]) if row is not None else None
