"""Restriction of processing (Art. 18 GDPR): a restricted person's data is kept but no
message is sent to them; a send answers ``409 subject_restricted``.

The send path asks ``RestrictedSubjects`` (a runtime service) for the account's set of
restricted people's blind indexes, cached like the account's rights: a change in this
process applies at once, one in another process within the cache's seconds. An account
with nobody restricted, nearly all of them, costs a send one dictionary look-up and no
HMAC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, actor_label, audit_row, record
from tidings.core.ids import new_id
from tidings.core.ttl_cache import KeyedTtlCache
from tidings.privacy.models import SubjectRestriction
from tidings.privacy.subjects import subject_index
from tidings.storage.db import SYSTEM, Database
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, NotFound

__all__ = ["RestrictedSubjects", "active_restriction", "do_lift", "do_restrict",
           "list_restrictions", "restricted", "subject_restricted"]

_TABLE = "subject_restrictions"


def subject_restricted() -> Conflict:
    return Conflict("The recipient has restricted the processing of their data: nothing "
                    "is sent to them until the restriction is lifted.",
                    code="subject_restricted")


async def do_restrict(session: AsyncSession, *, tenant: str, index: str,
                      request_id: str | None, actor: Actor,
                      now: datetime) -> SubjectRestriction:
    """Restrict a person; the one in force if they are already."""
    found = await active_restriction(session, tenant=tenant, index=index)
    if found is not None:
        return found
    row = SubjectRestriction(id=new_id("rst"), tenant_id=tenant, subject_index=index,
                             request_id=request_id, created_at=now)
    session.add(row)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table=_TABLE, row_id=row.id, fields=["subject"],
                                     now=now)])
    return row


async def do_lift(session: AsyncSession, *, tenant: str, restriction_id: str, actor: Actor,
                  now: datetime) -> SubjectRestriction:
    """Lift a restriction; the caller records the notice to the person first (Art.
    18(3): they are told before it is lifted)."""
    row = await session.scalar(select(SubjectRestriction).where(
        SubjectRestriction.tenant_id == tenant,
        SubjectRestriction.id == restriction_id).with_for_update())
    if row is None:
        raise NotFound("There is no such restriction.", code="restriction_not_found")
    if row.lifted_at is not None:
        raise Conflict("The restriction is lifted already.", code="restriction_lifted")
    row.lifted_at, row.lifted_by = now, actor_label(actor)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                     table=_TABLE, row_id=row.id, fields=["lifted_at"],
                                     now=now)])
    return row


async def active_restriction(session: AsyncSession, *, tenant: str,
                             index: str) -> SubjectRestriction | None:
    return await session.scalar(select(SubjectRestriction).where(
        SubjectRestriction.tenant_id == tenant, SubjectRestriction.subject_index == index,
        SubjectRestriction.lifted_at.is_(None)).limit(1))


async def list_restrictions(session: AsyncSession, *,
                            tenant: str) -> Sequence[SubjectRestriction]:
    return (await session.scalars(select(SubjectRestriction).where(
        SubjectRestriction.tenant_id == tenant).order_by(SubjectRestriction.created_at,
                                                         SubjectRestriction.id))).all()


async def restricted(session: AsyncSession, *, tenant: str) -> frozenset[str]:
    found = await session.scalars(select(SubjectRestriction.subject_index).where(
        SubjectRestriction.tenant_id == tenant, SubjectRestriction.lifted_at.is_(None)))
    return frozenset(index for index in found if index)


class RestrictedSubjects:
    """Each account's restricted people (blind indexes), cached for ``cache_seconds``."""

    def __init__(self, db: Database, *, cache_seconds: float) -> None:
        self._db = db
        self._cache: KeyedTtlCache[str, frozenset[str]] = KeyedTtlCache(
            self._load, ttl=cache_seconds)

    async def _load(self, tenant: str) -> frozenset[str]:
        async with self._db.transaction(tenant=SYSTEM, write=False) as session:
            return await restricted(session, tenant=tenant)

    def invalidate(self, tenant: str) -> None:
        self._cache.forget(tenant)

    async def of(self, tenant: str) -> frozenset[str]:
        return await self._cache.get(tenant)

    async def which(self, keys: TenantKeys, addresses: Sequence[str]) -> list[bool]:
        """Whether each address is a restricted person of ``keys``' account."""
        indexes = await self.of(keys.tenant_id)
        if not indexes:
            return [False] * len(addresses)
        return [subject_index(keys, address) in indexes for address in addresses]
