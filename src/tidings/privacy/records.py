"""A person's traces outside their messages: requests, bundles, holds, restrictions and
WhatsApp's customer-service window. Erasure empties them; rectification moves them to
the corrected address, so the old one is left nowhere live (DSR-2, DSR-3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.consents.models import ConsentEvent
from tidings.messaging.models import Message
from tidings.privacy.models import (
    REQUEST_SUBJECT_FIELD,
    LegalHold,
    PrivacyBundle,
    PrivacyRequest,
    SubjectRestriction,
)
from tidings.storage.vault import TenantKeys
from tidings.whatsapp.models import CustomerWindow
from tidings.whatsapp.service import INDEX_FIELD as WINDOW_INDEX_FIELD

__all__ = ["indexes_under", "move_subject_records", "scrub_subject_records"]


async def scrub_subject_records(session: AsyncSession, *, tenant: str,
                                indexes: Sequence[str] | None, windows: Sequence[str] = (),
                                now: datetime) -> None:
    """Forget the people with these blind indexes (everyone of the tenant: ``None``)
    and WhatsApp window tokens: their requests keep type, dates and outcome, and name
    nobody. (Their consent events go in ``erasure.erase_subject``, in a session that may
    delete from that append-only table.)"""
    if indexes is not None and not indexes:
        return
    requests = select(PrivacyRequest.id).where(_whose(PrivacyRequest, tenant, indexes))
    await session.execute(delete(PrivacyBundle).where(
        PrivacyBundle.tenant_id == tenant, PrivacyBundle.request_id.in_(requests)))
    await _execute(session, update(PrivacyRequest).where(
        _whose(PrivacyRequest, tenant, indexes),
    ).values(subject_enc=None, subject_index=None, note_enc=None, rectify_enc=None))
    await _execute(session, update(SubjectRestriction).where(
        _whose(SubjectRestriction, tenant, indexes), SubjectRestriction.lifted_at.is_(None),
    ).values(lifted_at=now, lifted_by="system:erasure"))
    for model in (SubjectRestriction, LegalHold):
        await _execute(session, update(model).where(
            _whose(model, tenant, indexes)).values(subject_index=None))
    if windows:
        await session.execute(delete(CustomerWindow).where(
            CustomerWindow.tenant_id == tenant, CustomerWindow.customer_index.in_(windows)))


def _whose(model: type[PrivacyRequest] | type[SubjectRestriction] | type[LegalHold],
           tenant: str, indexes: Sequence[str] | None) -> Any:
    condition = model.tenant_id == tenant
    if indexes is not None:
        condition &= model.subject_index.in_(indexes)
    return condition


async def move_subject_records(session: AsyncSession, *, keys: TenantKeys, old: str,
                               new: str, old_index: str, new_index: str) -> None:
    """Move the person's requests, holds, restrictions and window from ``old`` to
    ``new`` (a rectification): each request then names the corrected address."""
    tenant = keys.tenant_id
    for row in (await session.scalars(select(PrivacyRequest).where(
            PrivacyRequest.tenant_id == tenant,
            PrivacyRequest.subject_index == old_index))).all():
        row.subject_enc = keys.encrypt(new, field=REQUEST_SUBJECT_FIELD)
        row.subject_index, row.rectify_enc = new_index, None
    for model in (SubjectRestriction, LegalHold):
        await _execute(session, update(model).where(
            model.tenant_id == tenant, model.subject_index == old_index,
        ).values(subject_index=new_index))
    old_window, new_window = (keys.blind_index(a, field=WINDOW_INDEX_FIELD) for a in (old, new))
    await _execute(session, update(CustomerWindow).where(
        CustomerWindow.tenant_id == tenant, CustomerWindow.customer_index == old_window,
    ).values(customer_index=new_window))


async def indexes_under(session: AsyncSession, *, tenant: str,
                        key_ids: Sequence[str] | None) -> list[str]:
    """The blind indexes of the people whose messages or consent evidence are under
    ``key_ids`` (an erasure ledger entry names keys, not people)."""
    condition = Message.tenant_id == tenant
    if key_ids is not None:
        condition &= Message.subject_key.in_(key_ids)
    outbound = select(Message.to_index).where(condition, Message.direction == "outbound",
                                              Message.to_index != "")
    inbound = select(Message.from_index).where(condition, Message.from_index.is_not(None))
    consents = select(ConsentEvent.subject_index).where(ConsentEvent.tenant_id == tenant)
    if key_ids is not None:
        consents = consents.where(ConsentEvent.subject_key.in_(key_ids))
    found = (await session.scalars(outbound.union(inbound, consents))).all()
    return sorted(index for index in found if index)


async def _execute(session: AsyncSession, statement: object) -> None:
    await session.execute(statement.execution_options(  # type: ignore[attr-defined]
        synchronize_session=False))
