"""Outbox handlers of the messaging pipeline: dispatch, carrier reports, expiry.

Each handler is idempotent: a job that runs again after a crash finds the
message already moved and does nothing twice (carrier submission itself is
idempotent by message id, see ``tidings.connectors.base``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from tidings.accounts.models import Account
from tidings.connectors.base import DeliveryReport, OutboundMessage, SubmitResult
from tidings.jobs.outbox import ClaimedJob, complete, retry_many_later
from tidings.jobs.registry import JobRegistry
from tidings.jobs.workers import GAUGE_EVERY
from tidings.messaging import idempotency
from tidings.messaging.content import channel_content
from tidings.messaging.lifecycle import Status, is_final
from tidings.messaging.service import EXPIRE_JOB
from tidings.messaging.status_changes import (
    DISPATCH_JOB,
    FALLBACK_JOB,
    MESSAGES,
    MessageState,
    StatusChanges,
    load_states,
    load_states_by_id,
)
from tidings.routing.router import Routed, Router
from tidings.storage.ciphers import FieldCipher
from tidings.storage.db import SYSTEM, SessionOrConnection
from tidings.storage.subject_keys import ciphers_of
from tidings.webhooks.subscriptions import Subscription

if TYPE_CHECKING:
    from tidings.core.services import Services

EXPIRED_ERROR = "validity_period_elapsed"
SUBJECT_ERASED_ERROR = "subject_erased"
SUBJECT_RESTRICTED_ERROR = "subject_restricted"


async def _subscriptions(session: SessionOrConnection,
                         tenants: set[str]) -> dict[str, Subscription]:
    rows = await session.execute(
        select(Account.id, Account.webhook_url, Account.webhook_statuses)
        .where(Account.id.in_(tenants)))
    return {tenant: Subscription.stored(url, statuses) for tenant, url, statuses in rows.all()}


async def _changes(session: SessionOrConnection, messages: Sequence[MessageState],
                   now: datetime) -> StatusChanges:
    return StatusChanges(now, await _subscriptions(session, {m.tenant_id for m in messages}))


async def dispatch_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    """Submit queued (and now due scheduled) messages to their connector."""
    ready = await _prepare_dispatch(rt, jobs)
    if not ready:
        return
    outbound, withheld = await _outbound(rt, list(ready.values()))
    if withheld:
        await _fail_withheld(rt, jobs, withheld)
        if not outbound:
            return
    router = Router(rt.connectors, await rt.routes.table(rt.db), now=rt.clock.now())
    routed = await router.submit(outbound)
    await _record_submissions(rt, jobs, routed)
    _tell_connectors_recorded(rt, routed)


def _plainly_queued(message: MessageState | None, now: datetime) -> bool:
    return (message is not None and message.status == Status.QUEUED
            and not (message.expires_at and message.expires_at <= now))


async def _prepare_dispatch(rt: Services, jobs: Sequence[ClaimedJob]) -> dict[str, MessageState]:
    """Drop finished or expired messages, move scheduled ones to queued; commit that."""
    now, ids = rt.clock.now(), [j.ref_id for j in jobs]
    async with rt.db.core(tenant=SYSTEM, write=False) as session:
        messages = await load_states_by_id(session, ids, content=True)
    if all(_plainly_queued(messages.get(j.ref_id), now) for j in jobs):
        return messages  # the usual case: nothing to write, so no write lock to wait for
    ready: dict[str, MessageState] = {}
    async with rt.db.core(tenant=SYSTEM) as session:
        messages = await load_states_by_id(session, ids, content=True)
        changes = await _changes(session, list(messages.values()), now)
        done = []
        for job in jobs:
            message = messages.get(job.ref_id)
            if message is None or is_final(message.status) or message.status == Status.SENT:
                done.append(job.id)
            elif message.expires_at and message.expires_at <= now:
                changes.report(message, Status.EXPIRED, source="dispatcher",
                               error_code=EXPIRED_ERROR)
                done.append(job.id)
            else:
                if message.status == Status.SCHEDULED:
                    changes.report(message, Status.QUEUED, source="scheduler")
                ready[message.id] = message
        woken = await changes.flush(session)
        await complete(session, done)
    rt.metrics.count_moves(changes.moved)  # after the commit: only what was stored
    if woken:
        rt.wakeups.notify(*woken)
    return ready


async def _outbound(rt: Services, messages: Sequence[MessageState]
                    ) -> tuple[list[tuple[OutboundMessage, str]], dict[str, str]]:
    """The messages in clear for the carriers, and the error code of each that must not
    go: its subject was erased after it was stored (the key is gone), or restricted
    processing (cached: an account that restricts nobody costs a look-up)."""
    outbound, withheld = [], {}
    by_tenant: dict[str, list[MessageState]] = defaultdict(list)
    for message in messages:
        by_tenant[message.tenant_id].append(message)
    for tenant, states in by_tenant.items():
        keys = await rt.vault.keys_for(tenant)
        ciphers = await ciphers_of(keys, states)  # the batch's subjects in one look-up
        restricted = await rt.restricted_subjects.of(tenant)
        for message in states:
            cipher = ciphers[message.id]
            if cipher is None:
                withheld[message.id] = SUBJECT_ERASED_ERROR
            elif restricted and message.to_index in restricted:
                withheld[message.id] = SUBJECT_RESTRICTED_ERROR
            else:
                outbound.append((_in_clear(message, cipher), tenant))
    return outbound, withheld


def _in_clear(message: MessageState, cipher: FieldCipher) -> OutboundMessage:
    if message.to_enc is None or message.from_enc is None or message.body_enc is None:
        raise ValueError("dispatch needs the message loaded with its content")
    return OutboundMessage(
        message_id=message.id, channel=message.channel,
        to=cipher.decrypt(message.to_enc, field="messages.to"),
        sender=cipher.decrypt(message.from_enc, field="messages.from"),
        body=cipher.decrypt(message.body_enc, field="messages.body"),
        encoding=message.encoding, num_segments=message.num_segments,
        content=channel_content(message.channel, cipher.decrypt_optional(
            message.content_enc, field="messages.content")))


async def _fail_withheld(rt: Services, jobs: Sequence[ClaimedJob],
                         withheld: dict[str, str]) -> None:
    """A message whose person was erased, or restricted processing, between its storing
    and its dispatch fails with that code, never to be sent: its job is done."""
    ids = set(withheld)
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM) as session:
        messages = await load_states_by_id(session, list(ids))
        changes = await _changes(session, list(messages.values()), now)
        for message in messages.values():
            changes.report(message, Status.FAILED, source="dispatcher",
                           error_code=withheld[message.id])
        woken = await changes.flush(session)
        await complete(session, [j.id for j in jobs if j.ref_id in ids])
    rt.metrics.count_moves(changes.moved)
    if woken:
        rt.wakeups.notify(*woken)


async def _record_submissions(rt: Services, jobs: Sequence[ClaimedJob],
                              results: Sequence[Routed]) -> None:
    now, by_message = rt.clock.now(), {j.ref_id: j for j in jobs}
    async with rt.db.core(tenant=SYSTEM) as session:
        messages = await load_states_by_id(session, [r.message.message_id for r in results])
        changes = await _changes(session, list(messages.values()), now)
        done, retries = [], []
        for routed in results:
            result = _final(routed)
            message, job = messages[result.message_id], by_message[result.message_id]
            _note_failed_attempts(changes, message, routed)
            if _apply_submit(rt, changes, message, routed.connector, result, job):
                done.append(job.id)
            else:
                delay = result.retry_after_seconds or min(2.0 ** job.attempts, 300.0)
                retries.append((job.id, now + timedelta(seconds=delay)))
        woken = await changes.flush(session)
        await retry_many_later(session, retries)
        await complete(session, done)
    rt.metrics.observe_dispatch(messages.values(), now)
    rt.metrics.count_moves(changes.moved)  # after the commit: only what was stored
    if woken:
        rt.wakeups.notify(*woken)


def _final(routed: Routed) -> SubmitResult:
    if routed.result is None:
        raise ValueError("the router returned a message without an answer")
    return routed.result


def _note_failed_attempts(changes: StatusChanges, message: MessageState,
                          routed: Routed) -> None:
    """Each connector that could not take the message, before the next one was tried."""
    for attempt in routed.failed:
        status = "rejected" if attempt.result.outcome == "rejected" else "unavailable"
        changes.note(message, status, source="dispatcher", connector=attempt.connector,
                     error_code=attempt.result.error_code)


def _apply_submit(rt: Services, changes: StatusChanges, message: MessageState, connector: str,
                  result: SubmitResult, job: ClaimedJob) -> bool:
    """Apply one carrier answer; False when the job should run again later."""
    if result.outcome == "accepted":
        message.connector, message.carrier_message_id = connector, result.carrier_message_id
        changes.report(message, Status.SENT, source="dispatcher", connector=connector)
    elif result.outcome == "rejected":
        changes.report(message, Status.REJECTED, source="carrier", connector=connector,
                       error_code=result.error_code)
    elif job.attempts >= rt.settings.dispatch_retry_max_attempts:
        changes.report(message, Status.FAILED, source="dispatcher", connector=connector,
                       error_code=result.error_code or "retry_limit_reached")
    else:
        changes.note(message, "retrying", source="dispatcher", connector=connector,
                     error_code=result.error_code)
        return False
    return True


def _tell_connectors_recorded(rt: Services, routed: Sequence[Routed]) -> None:
    """Carrier ids are stored now: receipts that came before them can be matched."""
    by_connector: dict[str, list[str]] = defaultdict(list)
    for item in routed:
        if item.result and item.result.outcome == "accepted" and item.result.carrier_message_id:
            by_connector[item.connector].append(item.result.carrier_message_id)
    for name, carrier_ids in by_connector.items():
        connector = rt.connectors.get(name)
        if connector is not None:
            connector.recorded(carrier_ids)


async def apply_reports(rt: Services, connector: str,
                        reports: Sequence[DeliveryReport]) -> list[bool]:
    """The connectors' report sink: apply final statuses; unknown ids are offered again.

    Urgent: the carrier waits for the answer to each report (SMPP: a deliver_sm_resp,
    with a slot of its window held until then)."""
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM, urgent=True) as session:
        # One connector per call: a plain IN on the indexed pair, never a row-value IN,
        # which PostgreSQL evaluates against every row of the table.
        rows = await load_states(session, (MESSAGES.c.connector == connector) & (
            MESSAGES.c.carrier_message_id.in_([r.carrier_message_id for r in reports])))
        by_carrier_id = {m.carrier_message_id: m for m in rows}
        changes = await _changes(session, list(by_carrier_id.values()), now)
        taken = []
        for report in reports:
            message = by_carrier_id.get(report.carrier_message_id)
            if message is not None:
                changes.report(message, report.status, source="carrier",
                               error_code=report.error_code)
            taken.append(message is not None)
        woken = await changes.flush(session)
    rt.metrics.count_moves(changes.moved)  # after the commit: only what was stored
    if woken:
        rt.wakeups.notify(*woken)
    return taken


async def expire_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    """Expire messages still undelivered when their validity period ends."""
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM) as session:
        messages = await load_states_by_id(session, [j.ref_id for j in jobs])
        changes = await _changes(session, list(messages.values()), now)
        for message in messages.values():
            if not is_final(message.status):
                changes.report(message, Status.EXPIRED, source="scheduler",
                               error_code=EXPIRED_ERROR)
        woken = await changes.flush(session)
        await complete(session, [j.id for j in jobs])
    rt.metrics.count_moves(changes.moved)  # after the commit: only what was stored
    if woken:
        rt.wakeups.notify(*woken)


async def fallback_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    """Messages still not delivered ``fallback_after`` seconds after they were sent on a
    channel: try the next one (unless a receipt or an earlier fallback came first)."""
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM) as session:
        messages = await load_states_by_id(session, [j.ref_id for j in jobs])
        changes = await _changes(session, list(messages.values()), now)
        for job in jobs:
            message = messages.get(job.ref_id)
            if (message is not None and message.status == Status.SENT
                    and message.fallback_channels
                    and message.channel == (job.payload or {}).get("channel")):
                changes.note(message, "not_delivered", source="fallback",
                             connector=message.connector, error_code="fallback_after_elapsed")
                changes.fall_back(message)
        woken = await changes.flush(session)
        await complete(session, [j.id for j in jobs])
    rt.metrics.count_moves(changes.moved)
    if woken:
        rt.wakeups.notify(*woken)


async def note_reads(rt: Services, connector: str, carrier_message_ids: Sequence[str]) -> None:
    """The recipient read these (WhatsApp): an event in each message's history. Read is
    not a status of its own: the read report also counts as delivered."""
    if not carrier_message_ids:
        return
    async with rt.db.core(tenant=SYSTEM) as session:
        rows = await load_states(session, (MESSAGES.c.connector == connector) & (
            MESSAGES.c.carrier_message_id.in_(list(carrier_message_ids))))
        changes = await _changes(session, rows, rt.clock.now())
        for message in rows:
            changes.note(message, "read", source="carrier", connector=connector)
        await changes.flush(session)


async def count_by_status(rt: Services) -> None:
    """The messages-by-status gauge (a whole-table count: a housekeeping chore)."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        by_status = (await session.execute(
            select(MESSAGES.c.status, func.count()).group_by(MESSAGES.c.status))).all()
    for status, count in by_status:
        rt.metrics.messages_by_status.labels(status).set(count)


IDEMPOTENCY_PRUNE_EVERY = 120  # housekeeping rounds: every minute


async def prune_idempotency(rt: Services) -> None:
    await idempotency.prune(rt.db, now=rt.clock.now())


def register(registry: JobRegistry) -> None:
    """Dispatch (two loops: it is the send path), expiry, channel fallback."""
    registry.job(DISPATCH_JOB, dispatch_batch, loops=2)
    registry.job(EXPIRE_JOB, expire_batch)
    registry.job(FALLBACK_JOB, fallback_batch)
    registry.chore("messages_by_status", count_by_status, every=GAUGE_EVERY)
    registry.chore("idempotency_prune", prune_idempotency, every=IDEMPOTENCY_PRUNE_EVERY)
