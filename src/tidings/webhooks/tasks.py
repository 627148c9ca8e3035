"""Deliver queued webhooks: render, sign, POST, record the attempt, retry with backoff.

Payloads are rendered from the message at send time (the tables hold no
personal data). A delivery is marked done only after a 2xx, so a crash
between the POST and the commit sends it again: at least once, with a stable
event id the client can deduplicate on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert, select

from tidings.accounts.models import Account
from tidings.db import SYSTEM
from tidings.messaging.models import Message, MessageEvent
from tidings.outbox import ClaimedJob, complete, retry_many_later
from tidings.vault import TenantKeys
from tidings.webhooks.backoff import next_attempt_delay, should_give_up
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery
from tidings.webhooks.sender import WebhookRequest, WebhookResult
from tidings.webhooks.service import INBOUND_EVENT
from tidings.webhooks.signing import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from tidings.runtime import Runtime


@dataclass(frozen=True)
class _Pending:
    job: ClaimedJob
    delivery: WebhookDelivery
    request: WebhookRequest


async def deliver_batch(rt: Runtime, jobs: Sequence[ClaimedJob]) -> None:
    pending, finished = await _render(rt, jobs)
    results = await rt.webhook_sender.send_many([p.request for p in pending])
    await _record(rt, pending, results, finished)


async def _render(rt: Runtime, jobs: Sequence[ClaimedJob]) -> tuple[list[_Pending], list[int]]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        deliveries = (await session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.id.in_([j.ref_id for j in jobs])))).all()
        by_id = {d.id: d for d in deliveries}
        messages = {m.id: m for m in (await session.scalars(select(Message).where(
            Message.id.in_({d.message_id for d in deliveries})))).all()}
        # message_id IN, then the pairs in Python: a row-value IN on (message_id, seq)
        # makes PostgreSQL test every row of the table against the whole list.
        wanted = {(d.message_id, d.sequence) for d in deliveries}
        events = {(e.message_id, e.seq): e for e in (await session.scalars(
            select(MessageEvent).where(MessageEvent.message_id.in_(messages))
            .where(MessageEvent.seq.in_({seq for _, seq in wanted})))).all()
            if (e.message_id, e.seq) in wanted}
        secret_rows = await session.execute(select(Account.id, Account.webhook_secret_enc)
                                            .where(Account.id.in_({d.tenant_id
                                                                   for d in deliveries})))
        secrets = {tenant: secret for tenant, secret in secret_rows.all()}
    pending, finished = [], []
    now_ts = int(rt.clock.now().timestamp())
    for job in jobs:
        delivery = by_id.get(job.ref_id)
        if delivery is None or delivery.status != "pending":
            finished.append(job.id)
            continue
        keys = await rt.vault.keys_for(delivery.tenant_id)
        message = messages[delivery.message_id]
        body = render_payload(delivery, message, events[(message.id, delivery.sequence)], keys)
        secret = keys.decrypt(secrets[delivery.tenant_id], field="accounts.webhook_secret")
        headers = {SIGNATURE_HEADER: sign(secret, body, timestamp=now_ts),
                   "Content-Type": "application/json", "Tidings-Event-Id": delivery.event_id,
                   "Tidings-Delivery-Id": delivery.id}
        pending.append(_Pending(job, delivery, WebhookRequest(delivery.url, body, headers)))
    return pending, finished


def render_payload(delivery: WebhookDelivery, message: Message, event: MessageEvent,
                   keys: TenantKeys) -> bytes:
    data: dict[str, Any] = {
        "message_id": message.id, "status": event.status, "error_code": event.error_code,
        "direction": message.direction, "channel": message.channel,
        "to": keys.decrypt(message.to_enc, field="messages.to"),
        "from": keys.decrypt(message.from_enc, field="messages.from"),
        "num_segments": message.num_segments, "encoding": message.encoding,
    }
    if delivery.event_type == INBOUND_EVENT:
        data["body"] = keys.decrypt(message.body_enc, field="messages.body")
    return orjson.dumps({
        "id": delivery.event_id, "type": delivery.event_type,
        "created_at": event.created_at.isoformat(), "account_id": delivery.tenant_id,
        "sequence": delivery.sequence, "data": data,
    })


async def _record(rt: Runtime, pending: Sequence[_Pending], results: Sequence[WebhookResult],
                  finished: list[int]) -> None:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        rows = await session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.id.in_([item.delivery.id for item in pending])))
        by_id = {d.id: d for d in rows.all()}
        attempts, retries = [], []
        for item, result in zip(pending, results, strict=True):
            delivery = by_id[item.delivery.id]
            attempts.append(_attempt_row(delivery, result, now))
            retry_at = _settle(rt, delivery, result, now)
            if retry_at is None:
                finished.append(item.job.id)
            else:
                retries.append((item.job.id, retry_at))
            rt.metrics.observe_webhook(delivery, result, now)
        if attempts:
            await session.execute(insert(WebhookAttempt), attempts)
        await retry_many_later(session, retries)
        await complete(session, finished)


def _attempt_row(delivery: WebhookDelivery, result: WebhookResult,
                 now: datetime) -> dict[str, Any]:
    delivery.attempts += 1
    return {"tenant_id": delivery.tenant_id, "delivery_id": delivery.id,
            "number": delivery.attempts, "status_code": result.status_code,
            "error": (result.error or "")[:300] or None, "duration_ms": int(result.duration_ms),
            "response_excerpt": result.response_excerpt[:200], "created_at": now}


def _settle(rt: Runtime, delivery: WebhookDelivery, result: WebhookResult,
            now: datetime) -> datetime | None:
    """Update the delivery after an attempt; the time of the next one, or None when done."""
    delivery.last_status_code = result.status_code
    delivery.last_error = (result.error or "")[:300] or None
    if result.ok:
        delivery.status, delivery.completed_at, delivery.next_attempt_at = "succeeded", now, None
        return None
    retry_at = now + timedelta(seconds=next_attempt_delay(delivery.attempts))
    # Judged at the planned time of the next attempt: none is made past the max age.
    if should_give_up(delivery.created_at, retry_at,
                      max_age_seconds=rt.settings.webhook_max_age_seconds):
        delivery.status, delivery.completed_at, delivery.next_attempt_at = "failed", now, None
        return None
    delivery.next_attempt_at = retry_at
    return delivery.next_attempt_at
