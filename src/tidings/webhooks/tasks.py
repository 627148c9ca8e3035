"""Deliver queued webhooks: render, sign, POST, record the attempt, retry with backoff.

Payloads are rendered from the message at send time (the tables hold no
personal data). A delivery is marked done only after a 2xx, so a crash
between the POST and the commit sends it again: at least once, with a stable
event id the client can deduplicate on. Each attempt is recorded as its answer
arrives, grouped with the others of that moment (``recording.py``): a crash repeats
only the requests in flight, not the whole batch around them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Column, Row, Table, select

from tidings.accounts.models import Account
from tidings.jobs.outbox import ClaimedJob, complete, retry_many_later
from tidings.jobs.registry import JobRegistry
from tidings.messaging.models import Message, MessageEvent
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.storage.ciphers import FieldCipher
from tidings.storage.db import SYSTEM
from tidings.storage.subject_keys import ciphers_of
from tidings.webhooks.backoff import next_attempt_delay, should_give_up
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.recording import WRITTEN, Answered
from tidings.webhooks.sender import WebhookRequest, WebhookResult
from tidings.webhooks.service import DELIVER_JOB, INBOUND_EVENT
from tidings.webhooks.signing import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from tidings.core.services import Services


DELIVERIES = cast(Table, WebhookDelivery.__table__)
MESSAGES = cast(Table, Message.__table__)
EVENTS = cast(Table, MessageEvent.__table__)
_MESSAGE_COLUMNS = ("id", "direction", "channel", "to_enc", "from_enc", "body_enc",
                    "num_segments", "encoding", "subject_key")
_EVENT_COLUMNS = ("message_id", "seq", "status", "error_code", "created_at")
# A delivery deferred (its endpoint stalled, its slots held elsewhere) waits this long.
DEFERRED_RETRY = timedelta(seconds=1)


@dataclass(slots=True)
class Delivery:
    """A webhook delivery row as the worker reads and updates it."""

    id: str
    tenant_id: str
    event_id: str
    event_type: str
    message_id: str
    sequence: int
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


_DELIVERY_COLUMNS = [DELIVERIES.c[f.name] for f in fields(Delivery)]  # rows by position


@dataclass(frozen=True)
class _Pending:
    job: ClaimedJob
    delivery: Delivery
    request: WebhookRequest


async def deliver_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    """Send the batch; each answer is recorded as it arrives (``recording.py``), so a
    crash mid-batch sends again only what was in flight."""
    pending, finished = await _render(rt, jobs)
    recorded: list[tuple[_Pending, WebhookResult, asyncio.Future[None]]] = []

    def answered(index: int, result: WebhookResult) -> None:
        item = pending[index]
        recorded.append((item, result, rt.webhook_recorder.record(_answered(rt, item, result))))

    results = await rt.webhook_sender.send_many([p.request for p in pending],
                                                on_result=answered)
    try:
        await _release(rt, [p.job.id for p, r in zip(pending, results, strict=True)
                            if r.deferred], finished)
    finally:
        await _await_records(rt, recorded)


def _columns(table: Table, names: Sequence[str]) -> list[Column[Any]]:
    return [table.c[name] for name in names]


async def _render(rt: Services, jobs: Sequence[ClaimedJob]) -> tuple[list[_Pending], list[int]]:
    async with rt.db.core(tenant=SYSTEM, write=False) as session:
        rows = await session.execute(select(*_DELIVERY_COLUMNS).where(
            DELIVERIES.c.id.in_([j.ref_id for j in jobs])))
        by_id = {d.id: d for d in (Delivery(*row) for row in rows)}
        message_ids = {d.message_id for d in by_id.values()}
        messages = {m.id: m for m in await session.execute(
            select(*_columns(MESSAGES, _MESSAGE_COLUMNS)).where(MESSAGES.c.id.in_(message_ids)))}
        # message_id IN, then the pairs in Python: a row-value IN on (message_id, seq)
        # makes PostgreSQL test every row of the table against the whole list.
        wanted = {(d.message_id, d.sequence) for d in by_id.values()}
        events = {(e.message_id, e.seq): e for e in await session.execute(
            select(*_columns(EVENTS, _EVENT_COLUMNS)).where(
                EVENTS.c.message_id.in_(message_ids),
                EVENTS.c.seq.in_({seq for _, seq in wanted})))
            if (e.message_id, e.seq) in wanted}
        secret_rows = await session.execute(select(Account.id, Account.webhook_secret_enc)
                                            .where(Account.id.in_({d.tenant_id
                                                                   for d in by_id.values()})))
        secrets = {tenant: secret for tenant, secret in secret_rows.all()}
    pending, finished = [], []
    now_ts = int(rt.clock.now().timestamp())
    signing_keys: dict[str, str] = {}  # one decrypt per tenant and batch
    ciphers: dict[str, FieldCipher | None] = {}  # the messages' subjects' keys
    for job in jobs:
        delivery = by_id.get(job.ref_id)
        if delivery is None or delivery.status != "pending":
            finished.append(job.id)
            continue
        tenant = delivery.tenant_id
        if tenant not in signing_keys:
            keys = await rt.vault.keys_for(tenant)
            signing_keys[tenant] = keys.decrypt(secrets[tenant], field="accounts.webhook_secret")
            ciphers.update(await ciphers_of(keys, [
                messages[d.message_id] for d in by_id.values() if d.tenant_id == tenant]))
        secret = signing_keys[tenant]
        message = messages[delivery.message_id]
        body = render_payload(delivery, message, events[(message.id, delivery.sequence)],
                              ciphers[message.id])
        headers = {SIGNATURE_HEADER: sign(secret, body, timestamp=now_ts),
                   "Content-Type": "application/json", "Tidings-Event-Id": delivery.event_id,
                   "Tidings-Delivery-Id": delivery.id}
        pending.append(_Pending(job, delivery,
                                WebhookRequest(delivery.url, body, headers, tenant=tenant)))
    return pending, finished


def render_payload(delivery: Delivery, message: Row[Any], event: Row[Any],
                   cipher: FieldCipher | None) -> bytes:
    """The event's JSON: ``message`` has ``_MESSAGE_COLUMNS``, ``event`` ``_EVENT_COLUMNS``;
    ``cipher`` its subject's key (``None``: erased since, and ``to``/``from`` are null;
    an empty ciphertext: anonymised after its retention, null too)."""
    def clear(blob: bytes, field: str) -> str | None:
        return None if cipher is None or not blob else cipher.decrypt(blob, field=field)

    data: dict[str, Any] = {
        "message_id": message.id, "status": event.status, "error_code": event.error_code,
        "direction": message.direction, "channel": message.channel,
        "to": clear(message.to_enc, "messages.to"),
        "from": clear(message.from_enc, "messages.from"),
        "num_segments": message.num_segments, "encoding": message.encoding,
    }
    if delivery.event_type == INBOUND_EVENT:
        data["body"] = clear(message.body_enc, "messages.body")
    return orjson.dumps({
        "id": delivery.event_id, "type": delivery.event_type,
        "created_at": event.created_at.isoformat(), "account_id": delivery.tenant_id,
        "sequence": delivery.sequence, "data": data,
    })


async def _release(rt: Services, deferred: Sequence[int], finished: Sequence[int]) -> None:
    """Hand back the jobs not sent (deferred) and finish those with nothing to send."""
    if not deferred and not finished:
        return
    retry_at = rt.clock.now() + DEFERRED_RETRY
    async with rt.db.core(tenant=SYSTEM) as session:
        await retry_many_later(session, [(job_id, retry_at) for job_id in deferred])
        await complete(session, finished)
    if deferred:
        # A worker may poll seldom (TIDINGS_WORKER_POLL_SECONDS) and nothing else announces
        # a job that merely became due: wake a loop here when the deferred ones are.
        asyncio.get_running_loop().call_later(DEFERRED_RETRY.total_seconds(),
                                              rt.wakeups.wake_local, DELIVER_JOB)


def _answered(rt: Services, item: _Pending, result: WebhookResult) -> Answered:
    """What to store of an attempt that got its answer, now: the attempt, the
    delivery's new state and the job's fate.

    The delivery read at render time is current: the job's lease keeps every other
    worker away from it.
    """
    now = rt.clock.now()
    delivery = item.delivery
    attempt = _attempt_row(delivery, result, now)
    retry_at = _settle(rt, delivery, result, now)
    return Answered(item.job.id, delivery.id, {n: getattr(delivery, n) for n in WRITTEN},
                    attempt, retry_at)


async def _await_records(rt: Services, recorded: Sequence[tuple[_Pending, WebhookResult,
                                                             asyncio.Future[None]]]) -> None:
    """Wait for every attempt of the batch to be stored; count those that were.

    An attempt not stored (the database failed) leaves its job leased: it runs again
    when the lease ends, as after a crash.
    """
    outcomes = await asyncio.gather(*(f for _, _, f in recorded), return_exceptions=True)
    now = rt.clock.now()
    failure: BaseException | None = None
    for (item, result, _), outcome in zip(recorded, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failure = failure or outcome
        else:
            rt.metrics.observe_webhook(item.delivery.created_at, result, now)
    if failure is not None:
        raise failure


def _attempt_row(delivery: Delivery, result: WebhookResult,
                 now: datetime) -> dict[str, Any]:
    delivery.attempts += 1
    return {"tenant_id": delivery.tenant_id, "delivery_id": delivery.id,
            "number": delivery.attempts, "status_code": result.status_code,
            "error": (result.error or "")[:300] or None, "duration_ms": int(result.duration_ms),
            "response_bytes": result.response_bytes, "created_at": now}


def _settle(rt: Services, delivery: Delivery, result: WebhookResult,
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


def register(registry: JobRegistry) -> None:
    """Webhook delivery: it lets dispatch go first when both are waiting (on SQLite
    they share one write lock, and a send matters more than its callback)."""
    registry.job(DELIVER_JOB, deliver_batch, loops=lambda s: s.webhook_loops,
                 yields_to=DISPATCH_JOB, lease_seconds=lambda s: s.webhook_lease_seconds)
