"""Create, read, list and cancel messages; apply status reports. Never commits."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core import request_ids
from tidings.core.ids import new_id
from tidings.jobs.outbox import job_row
from tidings.messaging.content import CONTENT_FIELD, content_fields
from tidings.messaging.drafts import Draft
from tidings.messaging.lifecycle import Status
from tidings.messaging.models import Message, MessageEvent
from tidings.messaging.schemas import MessageEventOut, MessageOut
from tidings.messaging.status_changes import DISPATCH_JOB, StatusChanges, load_states
from tidings.storage.ciphers import FieldCipher, SubjectKey
from tidings.storage.subject_keys import ciphers_of
from tidings.storage.vault import TenantKeys
from tidings.storage.writer import Rows, write_rows
from tidings.web.errors import Conflict, InvalidRequest, NotFound
from tidings.webhooks.service import INBOUND_EVENT, STATUS_EVENT, WebhookBatch
from tidings.webhooks.subscriptions import Subscription

if TYPE_CHECKING:
    from tidings.accounts.rights import MonthlyCap

EXPIRE_JOB = "message.expire"
PERSONAL_FIELDS = ("to", "from", "body")
_CURSOR_ID = re.compile(r"msg_[0-9a-z]{26}")


@dataclass(frozen=True)
class SendContext:
    tenant: str
    keys: TenantKeys
    actor: Actor
    webhooks: Subscription  # the account's
    # The account's monthly cap: its messages are counted as they are stored.
    monthly_cap: MonthlyCap | None = None
    trial: bool = False  # a trial account: to verified numbers, up to its allowance


@dataclass(frozen=True)
class Created:
    """A stored message with its clear values, for the response that follows."""

    row: dict[str, Any]
    to: str
    sender: str
    body: str
    content_json: str | None = None


def _message_row(ctx: SendContext, draft: Draft, subject: SubjectKey, *, message_id: str,
                 status: Status, now: datetime) -> dict[str, Any]:
    return {
        "id": message_id, "tenant_id": ctx.tenant, "direction": "outbound",
        "channel": draft.channel, "status": status.value,
        "to_enc": subject.encrypt(draft.to, field="messages.to"),
        "to_index": subject.index,  # the recipient's blind index is the subject's
        "from_enc": subject.encrypt(draft.sender, field="messages.from"),
        "body_enc": subject.encrypt(draft.body, field="messages.body"),
        "encoding": draft.encoding, "num_segments": draft.num_segments,
        "status_callback": draft.status_callback, "send_at": draft.send_at,
        "expires_at": draft.expires_at, "connector": None, "carrier_message_id": None,
        "error_code": None, "smpp_receipt_to": draft.smpp_receipt_to,
        "fallback_channels": ",".join(draft.fallback_channels) or None,
        "fallback_after": draft.fallback_after,
        "content_enc": subject.encrypt_optional(draft.content_json, field=CONTENT_FIELD),
        "subject_key": subject.key_id,
        "event_count": 1, "created_at": now, "updated_at": now,
    }


async def cipher_of(keys: TenantKeys, message: Message) -> FieldCipher | None:
    """``ciphers_of`` for one message."""
    return (await ciphers_of(keys, [message]))[message.id]


def _event_row(*, tenant: str, message_id: str, seq: int, status: str, applied: bool,
               source: str, error_code: str | None, now: datetime) -> dict[str, Any]:
    return {"tenant_id": tenant, "message_id": message_id, "seq": seq, "status": status,
            "applied": applied, "source": source, "error_code": error_code,
            "connector": None, "created_at": now}


def build_messages(ctx: SendContext, drafts: Sequence[Draft], subjects: Sequence[SubjectKey],
                   now: datetime) -> tuple[Rows, list[Created]]:
    """Rows for new messages, their first event, dispatch jobs, webhooks and audit;
    ``subjects`` the recipients' keys (``privacy.subjects.subjects_for``, called before a
    transaction opens)."""
    created, rows, webhooks = [], Rows(), WebhookBatch.empty()
    request = request_ids.job_payload()  # worker log lines about these messages name it
    for draft, subject in zip(drafts, subjects, strict=True):
        message_id = new_id("msg")
        status = Status.SCHEDULED if draft.send_at else Status.QUEUED
        created.append(Created(_message_row(ctx, draft, subject, message_id=message_id,
                                            status=status, now=now),
                               draft.to, draft.sender, draft.body, draft.content_json))
        rows.add("message_events", [_event_row(
            tenant=ctx.tenant, message_id=message_id, seq=1, status=status, applied=True,
            source="api", error_code=None, now=now)])
        rows.add("jobs", [job_row(tenant=ctx.tenant, kind=DISPATCH_JOB, ref_id=message_id,
                                  now=now, run_at=draft.send_at, payload=request)])
        if draft.expires_at:
            rows.add("jobs", [job_row(tenant=ctx.tenant, kind=EXPIRE_JOB, ref_id=message_id,
                                      now=now, run_at=draft.expires_at)])
        rows.add("audit_events", [audit_row(
            tenant=ctx.tenant, actor=ctx.actor, action="create", table="messages",
            row_id=message_id, now=now,
            fields=PERSONAL_FIELDS + (("content",) if draft.content_json else ()))])
        webhooks.add(tenant=ctx.tenant, message_id=message_id, sequence=1,
                     event_type=STATUS_EVENT,
                     urls=ctx.webhooks.urls_for(status, draft.status_callback), now=now)
    rows.add("messages", [c.row for c in created])
    rows.add("webhook_deliveries", webhooks.deliveries)
    if request is not None:
        for job in webhooks.jobs:  # their worker's log lines name the request too
            job["payload"] = request
    rows.add("jobs", webhooks.jobs)
    return rows, created


async def do_create_messages(session: AsyncSession, *, ctx: SendContext,
                             drafts: Sequence[Draft], subjects: Sequence[SubjectKey],
                             now: datetime) -> list[Created]:
    """Store messages in the caller's transaction (the send path uses the group writer)."""
    rows, created = build_messages(ctx, drafts, subjects, now)
    await write_rows(session, rows)
    return created


async def do_receive_inbound(session: AsyncSession, *, ctx: SendContext, subject: SubjectKey,
                             sender: str, to: str, body: str, channel: str, encoding: str,
                             num_segments: int, now: datetime,
                             carrier: tuple[str, str | None] | None = None) -> Created:
    """Store an inbound message and queue its ``message.inbound`` webhook; ``subject`` is
    the sender's key (``privacy.subjects.subjects_for``): the person who wrote is its
    data subject."""
    keys, message_id = ctx.keys, new_id("msg")
    row = {
        "id": message_id, "tenant_id": ctx.tenant, "direction": "inbound", "channel": channel,
        "status": Status.RECEIVED.value, "to_enc": subject.encrypt(to, field="messages.to"),
        "to_index": keys.blind_index(to, field="messages.to"),
        "from_enc": subject.encrypt(sender, field="messages.from"),
        "body_enc": subject.encrypt(body, field="messages.body"), "encoding": encoding,
        "num_segments": num_segments, "status_callback": None, "send_at": None,
        "expires_at": None, "connector": carrier[0] if carrier else None,
        "carrier_message_id": carrier[1] if carrier else None,
        "error_code": None, "smpp_receipt_to": None, "content_enc": None,
        "subject_key": subject.key_id, "from_index": subject.index,
        "fallback_channels": None, "fallback_after": None,
        "event_count": 1, "created_at": now, "updated_at": now,
    }
    await session.execute(insert(Message), [row])
    await session.execute(insert(MessageEvent), [_event_row(
        tenant=ctx.tenant, message_id=message_id, seq=1, status=Status.RECEIVED, applied=True,
        source="carrier", error_code=None, now=now)])
    await record(session, [audit_row(tenant=ctx.tenant, actor=ctx.actor, action="create",
                                     table="messages", row_id=message_id,
                                     fields=PERSONAL_FIELDS, now=now)])
    webhooks = WebhookBatch.empty()
    webhooks.add(tenant=ctx.tenant, message_id=message_id, sequence=1,
                 event_type=INBOUND_EVENT, urls=(ctx.webhooks.url,), now=now)
    await webhooks.flush(session)
    return Created(row, to, sender, body)


async def get_message(session: AsyncSession, *, tenant: str, message_id: str) -> Message:
    """The tenant's message or a 404: another tenant's id looks exactly like a missing one."""
    message = await session.scalar(select(Message).where(Message.id == message_id,
                                                         Message.tenant_id == tenant))
    if message is None:
        raise NotFound(f"No message {message_id!r}.", code="message_not_found")
    return message


async def get_events(session: AsyncSession, *, tenant: str,
                     message_id: str) -> list[MessageEvent]:
    rows = await session.scalars(select(MessageEvent).where(
        MessageEvent.message_id == message_id, MessageEvent.tenant_id == tenant)
        .order_by(MessageEvent.seq))
    return list(rows.all())


@dataclass(frozen=True)
class MessageFilters:
    status: str | None = None
    to: str | None = None
    channel: str | None = None
    direction: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    error_code: str | None = None


async def list_messages(session: AsyncSession, *, tenant: str, keys: TenantKeys,
                        filters: MessageFilters, cursor: str | None,
                        limit: int) -> tuple[list[Message], str | None]:
    """Newest first; the cursor is the last id seen (ids sort by creation time)."""
    query = select(Message).where(Message.tenant_id == tenant)
    if filters.status:
        query = query.where(Message.status == filters.status)
    if filters.to:
        query = query.where(Message.to_index == keys.blind_index(filters.to,
                                                                 field="messages.to"))
    if filters.channel:
        query = query.where(Message.channel == filters.channel)
    if filters.direction:
        query = query.where(Message.direction == filters.direction)
    if filters.error_code:
        query = query.where(Message.error_code == filters.error_code)
    if filters.created_after:
        query = query.where(Message.created_at >= filters.created_after)
    if filters.created_before:
        query = query.where(Message.created_at < filters.created_before)
    if cursor:
        query = query.where(Message.id < decode_cursor(cursor))
    rows = list((await session.scalars(query.order_by(Message.id.desc())
                                       .limit(limit + 1))).all())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    # Exactly an id: anything else (a NUL, say) must not reach the query.
    if _CURSOR_ID.fullmatch(value) is None:
        raise InvalidRequest("The cursor is not one this API gave out.", code="invalid_cursor")
    return value


def message_out(message: Message, cipher: FieldCipher | None,
                events: Sequence[MessageEvent] | None = None) -> MessageOut:
    """The API's view; ``cipher`` from ``ciphers_of`` (``None``: the subject was erased,
    and the message keeps only what is not personal)."""
    return MessageOut(
        id=message.id, account_id=message.tenant_id, direction=message.direction,
        channel=message.channel, status=message.status, **_personal_fields(message, cipher),
        encoding=message.encoding, num_segments=message.num_segments,
        status_callback=message.status_callback, send_at=message.send_at,
        expires_at=message.expires_at, error_code=message.error_code,
        created_at=message.created_at, updated_at=message.updated_at,
        events=None if events is None else [
            MessageEventOut(seq=e.seq, status=e.status, applied=e.applied, source=e.source,
                            error_code=e.error_code, connector=e.connector,
                            created_at=e.created_at) for e in events],
    )


def _personal_fields(message: Message, cipher: FieldCipher | None) -> dict[str, Any]:
    if cipher is None or message.anonymised_at is not None:  # erased, or past retention
        return {"to": None, "from_": None, "body": None}
    return {
        "to": cipher.decrypt(message.to_enc, field="messages.to"),
        "from_": cipher.decrypt(message.from_enc, field="messages.from"),
        "body": cipher.decrypt(message.body_enc, field="messages.body"),
        **content_fields(cipher.decrypt_optional(message.content_enc, field=CONTENT_FIELD)),
    }


def created_out(created: Created) -> MessageOut:
    row = created.row
    return MessageOut(
        id=row["id"], account_id=row["tenant_id"], direction=row["direction"],
        channel=row["channel"], status=row["status"], to=created.to, from_=created.sender,
        body=created.body, **content_fields(created.content_json),
        encoding=row["encoding"], num_segments=row["num_segments"],
        status_callback=row["status_callback"], send_at=row["send_at"],
        expires_at=row["expires_at"], error_code=None, created_at=row["created_at"],
        updated_at=row["updated_at"])


async def do_cancel_message(session: AsyncSession, *, tenant: str, message_id: str,
                            webhooks: Subscription, now: datetime) -> Message:
    message = await get_message(session, tenant=tenant, message_id=message_id)
    if message.status != Status.SCHEDULED:
        raise Conflict(f"Only a scheduled message can be canceled; this one is "
                       f"{message.status}.", code="message_not_cancelable")
    (state,) = await load_states(session, (Message.id == message.id)
                                 & (Message.tenant_id == tenant))
    changes = StatusChanges(now, {tenant: webhooks})
    changes.report(state, Status.CANCELED, source="api")
    await changes.flush(session)
    await session.refresh(message)
    return message
