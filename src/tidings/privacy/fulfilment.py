"""Job ``privacy.fulfil``: carry out a data subject request once it is stored.

Each type, idempotent (a job may run twice after a crash or an expired lease):

- **access**, **portability**: the person's records in this account gathered into a
  bundle (``bundles.py``), kept encrypted for ``BUNDLE_LIFETIME`` to download;
- **erasure**: stopped by a legal hold (``blocked_legal_hold``, the person to be told,
  nothing touched); else the person's keys destroyed and their messages scrubbed
  (``erasure.erase_subject``), then their requests, bundles, holds, restrictions and
  WhatsApp window forgotten (``records.py``);
- **restriction**: the person restricted; sends to them answer ``409``;
- **rectification**: the person's address corrected in their messages and records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import or_, select

from tidings.accounts.service import get_account
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.jobs.outbox import ClaimedJob, complete
from tidings.messaging import idempotency
from tidings.messaging.models import Message
from tidings.privacy import bundles
from tidings.privacy.deadlines import BUNDLE_LIFETIME
from tidings.privacy.erasure import erase_subject
from tidings.privacy.holds import active_hold
from tidings.privacy.models import (
    BUNDLE_CONTENT_FIELD,
    REQUEST_SUBJECT_FIELD,
    PrivacyBundle,
    PrivacyRequest,
)
from tidings.privacy.notices import queue_privacy_mail
from tidings.privacy.records import move_subject_records, scrub_subject_records
from tidings.privacy.requests import (
    OPEN_STATUSES,
    RequestStatus,
    RequestType,
    actor_of,
    add_notice,
    get_request,
    subject_of,
)
from tidings.privacy.restrictions import do_restrict
from tidings.privacy.retention import limits_of, message_body_days
from tidings.privacy.subjects import subject_index
from tidings.storage.subject_keys import ciphers_of
from tidings.storage.vault import TenantKeys
from tidings.whatsapp.service import INDEX_FIELD as WINDOW_INDEX_FIELD

__all__ = ["fulfil_batch"]

log = get_logger("tidings.privacy")
_RECTIFY_CHUNK = 1000


async def fulfil_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    for job in jobs:  # rare and independent: one at a time, each in its own transactions
        await _fulfil(rt, job)
        async with rt.db.transaction(tenant=job.tenant_id) as session:
            await complete(session, [job.id])


async def _fulfil(rt: Services, job: ClaimedJob) -> None:
    keys = await rt.vault.keys_for(job.tenant_id)
    async with rt.db.transaction(tenant=job.tenant_id, write=False) as session:
        row = await session.get(PrivacyRequest, job.ref_id)
    if row is None or row.status not in OPEN_STATUSES:
        return  # done already: this is the job's second run
    address = subject_of(keys, row)
    if address is None:
        return
    handler = _HANDLERS.get(RequestType(row.type))
    if handler is None:
        return  # decided by a person (an objection): no job is ever queued for it
    outcome, status = await handler(rt, keys, row, address)
    async with rt.db.transaction(tenant=job.tenant_id) as session:
        current = await get_request(session, tenant=job.tenant_id, request_id=row.id,
                                    for_update=True)
        now = rt.clock.now()
        current.status, current.updated_at = status.value, now
        if status != RequestStatus.BLOCKED_LEGAL_HOLD:
            current.completed_at = now
        current.outcome = {**current.outcome, **outcome}
        if status == RequestStatus.BLOCKED_LEGAL_HOLD:
            current.outcome = add_notice(current.outcome, "legal_hold", now)
            await _tell_of_hold(rt, session, current, now)
        action = f"dsr.{row.type}.fulfilled" if status == RequestStatus.COMPLETED \
            else f"dsr.{row.type}.{status.value}"
        await record(session, [audit_row(tenant=row.tenant_id, actor=actor_of(row.created_by),
                                         action=action, table="privacy_requests",
                                         row_id=row.id, fields=["status"], now=now)])
    log.info("privacy_request_done", request_id=row.id, type=row.type, status=status.value)


Outcome = tuple[dict[str, Any], RequestStatus]


async def _bundle(rt: Services, keys: TenantKeys, row: PrivacyRequest,
                  address: str) -> Outcome:
    records = await bundles.collect_subject(rt, tenant=row.tenant_id, address=address)
    now = rt.clock.now()
    if row.type == RequestType.ACCESS:
        async with rt.db.transaction(tenant=row.tenant_id, write=False) as session:
            account = await get_account(session, account_id=row.tenant_id)
            days = await message_body_days(session, tenant=row.tenant_id,
                                           limits=limits_of(rt.settings))
        processing = bundles.processing_info(tenant_name=account.name,
                                             connectors=records.connectors,
                                             message_body_days=days)
        content = bundles.access_bundle(records, request_id=row.id, generated_at=now,
                                        processing=processing)
    else:
        content = bundles.portability_bundle(records, request_id=row.id, generated_at=now)
    expires = now + BUNDLE_LIFETIME
    sealed = keys.encrypt(orjson.dumps(content).decode(), field=BUNDLE_CONTENT_FIELD)
    async with rt.db.transaction(tenant=row.tenant_id) as session:
        if await session.scalar(select(PrivacyBundle.id).where(
                PrivacyBundle.request_id == row.id)) is None:
            bundle_id = new_id("pb")
            session.add(PrivacyBundle(id=bundle_id, tenant_id=row.tenant_id,
                                      request_id=row.id, content_enc=sealed, created_at=now,
                                      expires_at=expires))
            await record(session, [audit_row(
                tenant=row.tenant_id, actor=actor_of(row.created_by), action="create",
                table="privacy_bundles", row_id=bundle_id, fields=["content"], now=now)])
    return ({"messages": len(content.get("messages", [])),
             "bundle_expires_at": expires.isoformat()}, RequestStatus.COMPLETED)


async def _erase(rt: Services, keys: TenantKeys, row: PrivacyRequest,
                 address: str) -> Outcome:
    index = subject_index(keys, address)
    async with rt.db.transaction(tenant=row.tenant_id, write=False) as session:
        hold = await active_hold(session, tenant=row.tenant_id, index=index)
    if hold is not None:
        return {"hold_id": hold.id, "hold_basis": hold.basis}, RequestStatus.BLOCKED_LEGAL_HOLD
    actor = actor_of(row.created_by)
    erased = await erase_subject(rt, tenant=row.tenant_id, address=address, actor=actor)
    async with rt.db.erasing(tenant=row.tenant_id) as session:  # after the messages too
        await scrub_subject_records(
            session, tenant=row.tenant_id, indexes=[index],
            windows=[keys.blind_index(address, field=WINDOW_INDEX_FIELD)], now=rt.clock.now())
        await idempotency.rewrite_recipient(session, keys=keys, address=address,
                                            replacement=None)
    if erased is None:
        return {"messages": 0}, RequestStatus.COMPLETED
    return ({"messages": erased.messages, "subject_token": erased.subject_token},
            RequestStatus.COMPLETED)


async def _restrict(rt: Services, keys: TenantKeys, row: PrivacyRequest,
                    address: str) -> Outcome:
    async with rt.db.transaction(tenant=row.tenant_id) as session:
        restriction = await do_restrict(session, tenant=row.tenant_id,
                                        index=subject_index(keys, address), request_id=row.id,
                                        actor=actor_of(row.created_by), now=rt.clock.now())
    rt.restricted_subjects.invalidate(row.tenant_id)
    return {"restriction_id": restriction.id}, RequestStatus.COMPLETED


async def _rectify(rt: Services, keys: TenantKeys, row: PrivacyRequest,
                   address: str) -> Outcome:
    if row.rectify_enc is None:
        return {"messages": 0}, RequestStatus.COMPLETED
    new = keys.decrypt(row.rectify_enc, field=REQUEST_SUBJECT_FIELD)
    old_index, new_index = subject_index(keys, address), subject_index(keys, new)
    changed, after = 0, ""
    while True:  # in chunks: a person with many messages holds no lock for long
        async with rt.db.erasing(tenant=row.tenant_id, forget=False) as session:
            messages = (await session.scalars(select(Message).where(
                Message.tenant_id == row.tenant_id, Message.id > after,
                or_((Message.to_index == old_index) & (Message.direction == "outbound"),
                    Message.from_index == old_index),
            ).order_by(Message.id).limit(_RECTIFY_CHUNK))).all()
            if not messages:
                await move_subject_records(session, keys=keys, old=address, new=new,
                                           old_index=old_index, new_index=new_index)
                await idempotency.rewrite_recipient(session, keys=keys, address=address,
                                                    replacement=new)
                break
            rewritten = await _rewrite(keys, messages, new, new_index)
            await record(session, [audit_row(
                tenant=row.tenant_id, actor=actor_of(row.created_by), action="rectify",
                table="messages", row_id=message.id, fields=[field], now=rt.clock.now(),
            ) for message, field in rewritten])
            changed, after = changed + len(rewritten), messages[-1].id
    await rt.db.forget_old_pages()  # the old address's pages leave the log
    return {"messages": changed}, RequestStatus.COMPLETED


async def _rewrite(keys: TenantKeys, messages: Sequence[Message], new: str,
                   new_index: str) -> list[tuple[Message, str]]:
    """Each message corrected, with the field it was (for its audit event, which names
    the field and not the values: DSR-2)."""
    ciphers, rewritten = await ciphers_of(keys, messages), []
    for message in messages:
        cipher = ciphers[message.id]
        if cipher is None:
            continue  # erased meanwhile: nothing left to correct
        if message.direction == "outbound":
            message.to_enc = cipher.encrypt(new, field="messages.to")
            message.to_index = new_index
            rewritten.append((message, "to"))
        else:
            message.from_enc = cipher.encrypt(new, field="messages.from")
            message.from_index = new_index
            rewritten.append((message, "from"))
    return rewritten


async def _tell_of_hold(rt: Services, session: Any, row: PrivacyRequest,
                        now: datetime) -> None:
    await queue_privacy_mail(
        rt, session, account_id=row.tenant_id, now=now, actor=Actor("system", "privacy"),
        subject="An erasure request is blocked by a legal hold",
        body=(f"The erasure request {row.id} met a legal hold ({row.outcome.get('hold_id')})"
              " and nothing was erased. Tell the person that their data is kept, on what "
              "basis, and until when; release the hold to erase them.\n"))


_HANDLERS: dict[RequestType, Any] = {
    RequestType.ACCESS: _bundle,
    RequestType.PORTABILITY: _bundle,
    RequestType.ERASURE: _erase,
    RequestType.RESTRICTION: _restrict,
    RequestType.RECTIFICATION: _rectify,
}
