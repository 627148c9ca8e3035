"""Data subject requests: received, due, extended, carried out, answered.

The account is the controller; a request it records (``POST /v1/privacy/requests``,
the portal, ``tidings privacy requests create``) or that the operator forwards to it
(processor mode) is stored with its deadline and, in the same transaction, a
``privacy.fulfil`` job that carries it out (``fulfilment.py``) once committed, so a
crash between the two loses nothing. An objection is the controller's to weigh (Art.
21(1): unless its grounds override the person's), so it waits for ``complete`` or
``reject`` by a person.

What is stored about the person: their address under the account's data key and their
blind index, to find their records; both are emptied when the person is erased, so
the request's history (type, dates, outcome counts, the erased key's token) remains
and names nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, actor_label, audit_row, record
from tidings.core.ids import new_id
from tidings.jobs.outbox import enqueue_rows, job_row
from tidings.numbers.service import normalize_number
from tidings.privacy.deadlines import check_extension, due_at
from tidings.privacy.models import (
    REQUEST_NOTE_FIELD,
    REQUEST_SUBJECT_FIELD,
    PrivacyRequest,
)
from tidings.privacy.subjects import subject_index
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, InvalidRequest, NotFound

__all__ = ["FULFIL_JOB", "OPEN_STATUSES", "RequestStatus", "RequestType", "Subject",
           "actor_of", "do_complete", "do_create_request", "do_extend", "do_reject",
           "get_request", "list_requests", "parse_subject", "subject_of"]

FULFIL_JOB = "privacy.fulfil"
_TABLE = "privacy_requests"


class RequestType(StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    PORTABILITY = "portability"
    OBJECTION = "objection"


class RequestStatus(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BLOCKED_LEGAL_HOLD = "blocked_legal_hold"
    REJECTED = "rejected"


OPEN_STATUSES = (RequestStatus.RECEIVED.value, RequestStatus.IN_PROGRESS.value)
# Carried out by a person, not the fulfilment job.
_DECIDED_BY_A_PERSON = (RequestType.OBJECTION,)


@dataclass(frozen=True)
class Subject:
    """A person as a request names them: ``kind`` ``number`` or ``email``, normalised."""

    kind: str
    address: str


def parse_subject(*, number: str | None, email: str | None) -> Subject:
    """Exactly one of a number (E.164) or an e-mail address; 400 otherwise."""
    if (number is None) == (email is None):
        raise InvalidRequest("Name the person by exactly one of number or email.",
                             code="invalid_subject", parameter="subject")
    if number is not None:
        if "@" in number:
            raise InvalidRequest("The number is an e-mail address; use email.",
                                 code="invalid_number", parameter="subject.number")
        return Subject("number", normalize_number(number))
    assert email is not None
    if "@" not in email:
        raise InvalidRequest("The e-mail address has no @.", code="invalid_email",
                             parameter="subject.email")
    return Subject("email", normalize_number(email))


def actor_of(created_by: str) -> Actor:
    kind, _, ident = created_by.partition(":")
    return Actor(kind, ident)


async def do_create_request(session: AsyncSession, *, keys: TenantKeys, tenant: str,
                            type_: RequestType, subject: Subject, note: str | None,
                            rectify_to: Subject | None, source: str, actor: Actor,
                            now: datetime) -> PrivacyRequest:
    """Record a request and, unless a person decides it, the job that carries it out."""
    _check_rectification(type_, subject, rectify_to)
    index = subject_index(keys, subject.address)
    if type_ == RequestType.ERASURE and await _open_erasure(session, tenant, index):
        raise Conflict("An erasure of this person is already under way.",
                       code="erasure_pending")
    row = PrivacyRequest(
        id=new_id("dsr"), tenant_id=tenant, type=type_.value,
        status=RequestStatus.RECEIVED.value, subject_kind=subject.kind,
        subject_enc=keys.encrypt(subject.address, field=REQUEST_SUBJECT_FIELD),
        subject_index=index,
        note_enc=None if note is None else keys.encrypt(note, field=REQUEST_NOTE_FIELD),
        rectify_enc=None if rectify_to is None else keys.encrypt(
            rectify_to.address, field=REQUEST_SUBJECT_FIELD),
        source=source, received_at=now, due_at=due_at(now), outcome={},
        created_by=actor_label(actor), updated_at=now)
    session.add(row)
    await session.flush()
    if type_ not in _DECIDED_BY_A_PERSON:
        await enqueue_rows(session, [job_row(tenant=tenant, kind=FULFIL_JOB, ref_id=row.id,
                                             now=now)])
    fields = ["subject", *(["note"] if note is not None else []),
              *(["rectify_to"] if rectify_to is not None else [])]
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table=_TABLE, row_id=row.id, fields=fields, now=now)])
    return row


def _check_rectification(type_: RequestType, subject: Subject,
                         rectify_to: Subject | None) -> None:
    if type_ != RequestType.RECTIFICATION:
        if rectify_to is not None:
            raise InvalidRequest("Only a rectification takes rectify_to.",
                                 code="unexpected_rectify_to", parameter="rectify_to")
        return
    if rectify_to is None:
        raise InvalidRequest("A rectification needs rectify_to: the correct number or "
                             "address.", code="rectify_to_missing", parameter="rectify_to")
    if rectify_to.kind != subject.kind:
        raise InvalidRequest("A number is rectified to a number, an address to an address.",
                             code="rectify_to_kind", parameter="rectify_to")
    if rectify_to.address == subject.address:
        raise InvalidRequest("rectify_to is the same as the subject.",
                             code="rectify_to_same", parameter="rectify_to")


async def _open_erasure(session: AsyncSession, tenant: str, index: str) -> bool:
    found = await session.scalar(select(PrivacyRequest.id).where(
        PrivacyRequest.tenant_id == tenant, PrivacyRequest.subject_index == index,
        PrivacyRequest.type == RequestType.ERASURE.value,
        PrivacyRequest.status.in_(OPEN_STATUSES)).limit(1))
    return found is not None


async def get_request(session: AsyncSession, *, tenant: str, request_id: str,
                      for_update: bool = False) -> PrivacyRequest:
    """Another account's request is missing, as a missing one is."""
    query = select(PrivacyRequest).where(PrivacyRequest.tenant_id == tenant,
                                         PrivacyRequest.id == request_id)
    row = await session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise NotFound("There is no such privacy request.", code="privacy_request_not_found")
    return row


async def list_requests(session: AsyncSession, *, tenant: str, status: str | None = None,
                        open_only: bool = False, limit: int = 100) -> Sequence[PrivacyRequest]:
    """The account's requests, those due first."""
    query = select(PrivacyRequest).where(PrivacyRequest.tenant_id == tenant)
    if status is not None:
        query = query.where(PrivacyRequest.status == status)
    if open_only:
        query = query.where(PrivacyRequest.status.in_(OPEN_STATUSES))
    return (await session.scalars(query.order_by(PrivacyRequest.due_at, PrivacyRequest.id)
                                  .limit(limit))).all()


def subject_of(keys: TenantKeys, row: PrivacyRequest) -> str | None:
    """The person's address; ``None`` once they were erased."""
    if not row.subject_enc:
        return None
    return keys.decrypt(row.subject_enc, field=REQUEST_SUBJECT_FIELD)


def note_of(keys: TenantKeys, row: PrivacyRequest) -> str | None:
    return None if row.note_enc is None else keys.decrypt(row.note_enc,
                                                          field=REQUEST_NOTE_FIELD)


def _ensure_open(row: PrivacyRequest) -> None:
    if row.status not in OPEN_STATUSES:
        raise Conflict(f"The request is {row.status}: it can no longer change.",
                       code="privacy_request_closed")


async def do_extend(session: AsyncSession, *, tenant: str, request_id: str, months: int,
                    reason: str, actor: Actor, now: datetime) -> PrivacyRequest:
    """Extend the deadline by ``months`` more calendar months from receipt, with the
    reason the person is told (recorded as a notice to them, before the due date)."""
    row = await get_request(session, tenant=tenant, request_id=request_id, for_update=True)
    _ensure_open(row)
    reason = _text(reason, parameter="reason", code="reason_missing")
    already = int(row.outcome.get("extension_months", 0))
    wanted = row.received_at + relativedelta(months=1 + already + months)
    check_extension(received_at=row.received_at, current_due=row.due_at, wanted=wanted,
                    now=now)
    row.due_at, row.extended_at, row.extension_reason = wanted, now, reason
    row.alerted_at = None  # the alert comes again before the new date
    row.outcome = {**add_notice(row.outcome, "extension", now),
                   "extension_months": already + months}
    row.updated_at = now
    await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                     table=_TABLE, row_id=row.id,
                                     fields=["due_at", "extension_reason"], now=now)])
    return row


async def do_complete(session: AsyncSession, *, tenant: str, request_id: str,
                      note: str, actor: Actor, now: datetime) -> PrivacyRequest:
    """A person closes a request they decided (an objection upheld, say) with a note
    the outcome keeps; the carried-out types complete themselves."""
    row = await get_request(session, tenant=tenant, request_id=request_id, for_update=True)
    _ensure_open(row)
    if row.type not in _DECIDED_BY_A_PERSON:
        raise Conflict(f"A {row.type} request is carried out by Tidings, not closed by "
                       "hand.", code="privacy_request_automatic")
    return await _close(session, row, RequestStatus.COMPLETED,
                        {"resolution": _text(note, parameter="note", code="note_missing")},
                        actor=actor, now=now)


async def do_reject(session: AsyncSession, *, tenant: str, request_id: str, reason: str,
                    actor: Actor, now: datetime) -> PrivacyRequest:
    """Refuse a request (manifestly unfounded, identity not established; Art. 12(5)),
    with the reason the person is told."""
    row = await get_request(session, tenant=tenant, request_id=request_id, for_update=True)
    _ensure_open(row)
    return await _close(session, row, RequestStatus.REJECTED,
                        {"reason": _text(reason, parameter="reason", code="reason_missing")},
                        actor=actor, now=now)


async def _close(session: AsyncSession, row: PrivacyRequest, status: RequestStatus,
                 outcome: dict[str, Any], *, actor: Actor, now: datetime) -> PrivacyRequest:
    row.status, row.completed_at, row.updated_at = status.value, now, now
    row.outcome = {**row.outcome, **outcome}
    await record(session, [audit_row(tenant=row.tenant_id, actor=actor, action="update",
                                     table=_TABLE, row_id=row.id, fields=["status"],
                                     now=now)])
    return row


def add_notice(outcome: dict[str, Any], kind: str, now: datetime) -> dict[str, Any]:
    """The outcome with one more notice to the person recorded (the account tells them:
    Tidings has no channel to a person that is not the account's)."""
    notices = [*outcome.get("notices", []), {"kind": kind, "at": now.isoformat()}]
    return {**outcome, "notices": notices}


def _text(raw: str, *, parameter: str, code: str, limit: int = 500) -> str:
    text = raw.strip()
    if not text:
        raise InvalidRequest(f"The {parameter} is empty.", code=code, parameter=parameter)
    if len(text) > limit:
        raise InvalidRequest(f"The {parameter} is longer than {limit} characters.",
                             code=f"{parameter}_too_long", parameter=parameter)
    return text
