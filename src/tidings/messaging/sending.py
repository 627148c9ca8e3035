"""The send path every front door shares: the REST endpoints, the fast single send,
Tidings' SMPP gateway and the CLI (through the API) check and store messages here.

A send is checked whole before anything is written (``prepare_send``,
``prepare_batch``: a bad request raises ``TidingsError`` and changes nothing), then
stored durably (``create_one``, ``store_batch``; with an idempotency key, the key
and the messages in one transaction), then the dispatcher and the webhook workers
are woken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.auth import Principal
from tidings.accounts.models import SENDING_STATUSES, AccountStatus
from tidings.accounts.rights import MonthlyCap, cap_reached, check_send, take_quota
from tidings.core.services import Services
from tidings.messaging import idempotency
from tidings.messaging.drafts import Draft, SendOptions, check_options, make_draft, render_template
from tidings.messaging.lifecycle import Status
from tidings.messaging.schemas import (
    MAX_BODY_CHARS,
    BatchError,
    BatchResponse,
    BatchResult,
    MessageOut,
    SendBatch,
    SendMessage,
)
from tidings.messaging.service import (
    SendContext,
    build_messages,
    cipher_of,
    created_out,
    do_create_messages,
    get_message,
    message_out,
)
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.privacy.restrictions import subject_restricted
from tidings.privacy.subjects import subjects_for
from tidings.signup import trials
from tidings.storage.ciphers import SubjectKey
from tidings.storage.writer import Rows, write_rows
from tidings.web.errors import Forbidden, InvalidRequest
from tidings.webhooks.destinations import check_webhook_url
from tidings.webhooks.service import DELIVER_JOB
from tidings.whatsapp.service import check_customer_service_window


def ensure_can_send(principal: Principal) -> None:
    if principal.account_status not in SENDING_STATUSES:
        raise Forbidden(f"The account is {principal.account_status} and cannot send.",
                        code=f"account_{principal.account_status}")


def check_body(rt: Services, text: str, *, rendered: bool = False) -> None:
    """The configured length limit (the schema only caps what a request may carry)."""
    what = "rendered body" if rendered else "body"
    if not text:
        raise InvalidRequest(f"The {what} is empty.", code="body_empty")
    limit = min(rt.settings.message_body_max_chars, MAX_BODY_CHARS)
    if len(text) > limit:
        raise InvalidRequest(f"The {what} is longer than {limit} characters.",
                             code="body_too_long")


async def send_context(rt: Services, principal: Principal,
                       monthly_cap: MonthlyCap | None = None) -> SendContext:
    keys = await rt.vault.keys_for(principal.tenant)
    return SendContext(principal.tenant, keys, principal.actor, principal.webhooks,
                       monthly_cap, trial=principal.account_status == AccountStatus.TRIAL)


async def check_rights(rt: Services, tenant: str, *, channels: Sequence[str],
                       sender: str) -> MonthlyCap | None:
    """Refuse what the account's rights (within those of every account above it) do
    not allow; its monthly cap, counted when the messages are stored. Cached: no
    database round trip."""
    effective = await rt.account_rights.effective(tenant)
    check_send(effective.rights, channels=channels, sender=sender)
    return effective.monthly_cap


def _options(rt: Services, body: SendMessage | SendBatch) -> SendOptions:
    check_webhook_url(body.status_callback, field="status_callback",
                      allow_private=rt.settings.webhook_allow_private)
    return check_options(sender=body.from_, channel=body.channel,
                         status_callback=body.status_callback, send_at=body.send_at,
                         validity_period=body.validity_period, now=rt.clock.now())


# --- one message ------------------------------------------------------------------------

async def prepare_send(rt: Services, principal: Principal,
                       body: SendMessage) -> tuple[SendContext, Draft]:
    """Everything a send checks before it writes; raises ``TidingsError`` on a bad one."""
    ensure_can_send(principal)
    if body.channel != "email":  # an email's length is the schema's to bound
        check_body(rt, body.body)
    options = _options(rt, body)
    cap = await check_rights(rt, principal.tenant, sender=options.sender,
                             channels=[options.channel, *(body.channels or ())])
    draft = make_draft(options, to=body.to, body=body.body, now=rt.clock.now(),
                       subject=body.subject, html=body.html, whatsapp=_whatsapp(body),
                       fallback=(tuple(body.channels[1:]) if body.channels else (),
                                 body.fallback_after))
    if draft.channel == "whatsapp" and not draft.fallback_channels:
        # With a fallback, a closed window is a failure like any other: the next goes.
        await check_customer_service_window(rt, principal.tenant, draft)
    ctx = await send_context(rt, principal, cap)
    await refuse_restricted(rt, ctx, draft.to)
    return ctx, draft


def _whatsapp(body: SendMessage) -> dict[str, Any] | None:
    if body.template is not None:
        return {"template": body.template.model_dump()}
    if body.media is not None:
        return {"media": body.media.model_dump()}
    return None


async def refuse_restricted(rt: Services, ctx: SendContext, to: str) -> None:
    """``409 subject_restricted`` for a person who restricted processing (Art. 18).
    Cached: no database round trip, and no HMAC for an account that restricts nobody."""
    if (await rt.restricted_subjects.which(ctx.keys, [to]))[0]:
        raise subject_restricted()


async def create_one(rt: Services, ctx: SendContext, draft: Draft) -> MessageOut:
    """Store one checked message (``prepare_send``, or the SMPP gateway's checks, with
    ``refuse_restricted``); returns once it is durable."""
    subjects = await subjects_for(ctx.keys, [draft.to])
    now = rt.clock.now()
    rows, created = build_messages(ctx, [draft], subjects, now)
    if ctx.monthly_cap is None and not ctx.trial:
        await rt.writer.write(ctx.tenant, rows)
    else:  # counted in the messages' own transaction, so the cap and the trial hold exactly
        try:
            await _store_counted(rt, ctx, draft, rows, now)
        except IntegrityError:  # another process made a trial's counter at that moment
            await _store_counted(rt, ctx, draft, rows, now)
    _after_create(rt, draft.channel, 1, webhooks=_has_webhooks(ctx, draft.status_callback))
    return created_out(created[0])


async def create_one_idempotent(rt: Services, ctx: SendContext, draft: Draft, *, key: str,
                                request: dict[str, Any]) -> tuple[MessageOut, bool]:
    """Store one checked message under an idempotency key, or answer the message stored
    under it before; the message, and whether it is that earlier one (a replay)."""
    request_hash = idempotency.fingerprint(ctx.keys, request, endpoint=idempotency.SINGLE_SEND)
    try:
        return await _create_idempotent(rt, ctx, draft, key, request_hash)
    except IntegrityError:  # a concurrent request with the same key won the race
        return await _create_idempotent(rt, ctx, draft, key, request_hash)


async def _create_idempotent(rt: Services, ctx: SendContext, draft: Draft, key: str,
                             request_hash: str) -> tuple[MessageOut, bool]:
    subjects = await subjects_for(ctx.keys, [draft.to])
    now = rt.clock.now()
    async with rt.db.transaction(tenant=ctx.tenant) as session:
        replay = await idempotency.find_replay(session, tenant=ctx.tenant, key=key,
                                               request_hash=request_hash)
        if replay is not None and replay.message_id is not None:
            message = await get_message(session, tenant=ctx.tenant, message_id=replay.message_id)
            return message_out(message, await cipher_of(ctx.keys, message)), True
        if ctx.trial:
            await _admit_one(rt, session, ctx, draft)
        await _take_quota(session, ctx, 1, now, whole=True)
        created = await do_create_messages(session, ctx=ctx, drafts=[draft],
                                           subjects=subjects, now=now)
        await idempotency.remember(session, tenant=ctx.tenant, key=key,
                                   request_hash=request_hash, message_id=created[0].row["id"],
                                   now=now)
    _after_create(rt, draft.channel, 1, webhooks=_has_webhooks(ctx, draft.status_callback))
    return created_out(created[0]), False


async def _take_quota(session: AsyncSession, ctx: SendContext, wanted: int, now: datetime,
                      *, whole: bool) -> int:
    """How many of ``wanted`` messages the monthly cap lets through (all without a cap);
    ``whole``: all or none, refused with ``monthly_cap_reached``."""
    if ctx.monthly_cap is None:
        return wanted
    granted = await take_quota(session, tenant=ctx.tenant, cap=ctx.monthly_cap,
                               wanted=wanted, now=now)
    if whole and granted < wanted:
        raise cap_reached()
    return granted


async def _store_counted(rt: Services, ctx: SendContext, draft: Draft, rows: Rows,
                         now: datetime) -> None:
    async with rt.db.transaction(tenant=ctx.tenant) as session:
        if ctx.trial:
            await _admit_one(rt, session, ctx, draft)
        await _take_quota(session, ctx, 1, now, whole=True)
        await write_rows(session, rows)


# --- a trial account's messages (signup/trials.py) -------------------------------------

async def _admit_one(rt: Services, session: AsyncSession, ctx: SendContext,
                     draft: Draft) -> None:
    [refusal] = await trials.admit(session, keys=ctx.keys, recipients=[draft.to],
                                   allowance=rt.settings.trial_message_allowance,
                                   now=rt.clock.now())
    if refusal is not None:
        raise refusal


async def _admit_batch(rt: Services, session: AsyncSession, ctx: SendContext,
                       batch: Batch) -> None:
    """Reject, recipient by recipient, what a trial may not send; count the rest."""
    refusals = await trials.admit(session, keys=ctx.keys,
                                  recipients=[draft.to for _, draft in batch.drafts],
                                  allowance=rt.settings.trial_message_allowance,
                                  now=rt.clock.now())
    admitted = []
    for (index, draft), refusal in zip(batch.drafts, refusals, strict=True):
        if refusal is None:
            admitted.append((index, draft))
        else:
            batch.results[index] = BatchResult(index=index, status="rejected",
                                               error=BatchError(code=refusal.code,
                                                                detail=refusal.detail))
    batch.drafts = admitted


def _has_webhooks(ctx: SendContext, status_callback: str | None) -> bool:
    return any(ctx.webhooks.urls_for(Status.QUEUED, status_callback))


def _after_create(rt: Services, channel: str, count: int, *, webhooks: bool) -> None:
    rt.wakeups.notify(DISPATCH_JOB, *([DELIVER_JOB] if webhooks else []))
    rt.metrics.messages_created.labels(channel, "outbound").inc(count)


# --- a batch ----------------------------------------------------------------------------

@dataclass
class Batch:
    """A checked batch: the drafts to store and each recipient's place in the answer."""

    channel: str
    status_callback: str | None
    drafts: list[tuple[int, Draft]]
    results: list[BatchResult | None]
    subjects: dict[int, SubjectKey] = field(default_factory=dict)  # by the draft's index

    async def key_subjects(self, ctx: SendContext) -> None:
        """Every recipient's key, before the batch's transaction opens."""
        found = await subjects_for(ctx.keys, [draft.to for _, draft in self.drafts])
        self.subjects = {index: key for (index, _), key in zip(self.drafts, found, strict=True)}

    def build(self, ctx: SendContext, now: datetime,
              granted: int | None = None) -> tuple[Rows, BatchResponse]:
        """Rows and answer for the first ``granted`` drafts (all by default); the rest
        are rejected: the account's monthly cap has no room for them."""
        taken = self.drafts if granted is None else self.drafts[:granted]
        rows, created = build_messages(ctx, [d for _, d in taken],
                                       [self.subjects[i] for i, _ in taken], now)
        results = list(self.results)
        refused = cap_reached()
        for index, _ in self.drafts[len(taken):]:
            results[index] = BatchResult(index=index, status="rejected", error=BatchError(
                code=refused.code, detail=refused.detail))
        for (index, draft), item in zip(taken, created, strict=True):
            results[index] = BatchResult(index=index, status="accepted",
                                         message_id=item.row["id"], to=draft.to,
                                         num_segments=draft.num_segments)
        final = [r for r in results if r is not None]
        return rows, BatchResponse(accepted=len(created), rejected=len(final) - len(created),
                                   results=final)


async def prepare_batch(rt: Services, principal: Principal,
                        body: SendBatch) -> tuple[SendContext, Batch]:
    """Everything a batch checks before it writes; a bad recipient is only rejected."""
    ensure_can_send(principal)
    if len(body.recipients) > rt.settings.batch_max_recipients:
        raise InvalidRequest(f"A batch takes at most {rt.settings.batch_max_recipients} "
                             "recipients.", code="too_many_recipients")
    options, now = _options(rt, body), rt.clock.now()
    if options.channel != "sms":
        raise InvalidRequest("Batch sends are SMS only; send emails one by one.",
                             code="channel_unavailable")
    cap = await check_rights(rt, principal.tenant, channels=[options.channel],
                             sender=options.sender)
    batch = Batch(options.channel, options.status_callback, [], [])
    for index, recipient in enumerate(body.recipients):
        try:
            text = render_template(body.body, recipient.variables)
            check_body(rt, text, rendered=True)
            batch.drafts.append((index, make_draft(options, to=recipient.to, body=text,
                                                   now=now)))
            batch.results.append(None)
        except InvalidRequest as exc:
            batch.results.append(BatchResult(index=index, status="rejected",
                                             error=BatchError(code=exc.code,
                                                              detail=exc.detail)))
    ctx = await send_context(rt, principal, cap)
    await _reject_restricted(rt, ctx, batch)
    return ctx, batch


async def _reject_restricted(rt: Services, ctx: SendContext, batch: Batch) -> None:
    """Reject, recipient by recipient, the people who restricted processing."""
    which = await rt.restricted_subjects.which(ctx.keys, [d.to for _, d in batch.drafts])
    if not any(which):
        return
    refused, kept = subject_restricted(), []
    for (index, draft), restricted in zip(batch.drafts, which, strict=True):
        if restricted:
            batch.results[index] = BatchResult(index=index, status="rejected", error=BatchError(
                code=refused.code, detail=refused.detail))
        else:
            kept.append((index, draft))
    batch.drafts = kept


async def store_batch(rt: Services, ctx: SendContext, batch: Batch, *, key: str | None = None,
                      request: dict[str, Any] | None = None) -> tuple[BatchResponse, bool]:
    """Store a checked batch (under an idempotency key when given, with ``request`` its
    fingerprint's source); the answer, and whether it replays an earlier one."""
    await batch.key_subjects(ctx)
    if key is None and (ctx.monthly_cap is not None or ctx.trial):
        answer = await _batch_counted(rt, ctx, batch)
    elif key is None:
        rows, answer = batch.build(ctx, rt.clock.now())
        if batch.drafts:
            await rt.writer.write(ctx.tenant, rows)
    else:
        request_hash = idempotency.fingerprint(ctx.keys, request or {},
                                               endpoint=idempotency.BATCH_SEND)
        try:
            answer, replayed = await _batch_idempotent(rt, ctx, batch, key, request_hash)
        except IntegrityError:  # a concurrent request with the same key won the race
            answer, replayed = await _batch_idempotent(rt, ctx, batch, key, request_hash)
        if replayed:
            return answer, True
    _after_create(rt, batch.channel, answer.accepted,
                  webhooks=_has_webhooks(ctx, batch.status_callback))
    return answer, False


async def _batch_counted(rt: Services, ctx: SendContext, batch: Batch) -> BatchResponse:
    """Store what the trial and the monthly cap let through, counted with it."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=ctx.tenant) as session:
        rows, answer = await _build_counted(rt, session, ctx, batch, now)
        await write_rows(session, rows)
    return answer


async def _build_counted(rt: Services, session: AsyncSession, ctx: SendContext, batch: Batch,
                         now: datetime) -> tuple[Rows, BatchResponse]:
    """A trial's refusals first (recipient by recipient), then the monthly cap's room;
    what the cap refuses is given back to the trial's allowance, uncounted."""
    if ctx.trial:
        await _admit_batch(rt, session, ctx, batch)
    granted = await _take_quota(session, ctx, len(batch.drafts), now, whole=False)
    if ctx.trial and granted < len(batch.drafts):
        await trials.give_back(session, tenant=ctx.tenant, count=len(batch.drafts) - granted,
                               now=now)
    return batch.build(ctx, now, granted)


async def _batch_idempotent(rt: Services, ctx: SendContext, batch: Batch, key: str,
                            request_hash: str) -> tuple[BatchResponse, bool]:
    """Replay the stored answer, or store the batch and its answer in one transaction."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=ctx.tenant) as session:
        replay = await idempotency.find_replay(session, tenant=ctx.tenant, key=key,
                                               request_hash=request_hash)
        if replay is not None and replay.response_enc is not None:
            stored = ctx.keys.decrypt(replay.response_enc, field=idempotency.RESPONSE_FIELD)
            return BatchResponse.model_validate_json(stored), True
        rows, answer = await _build_counted(rt, session, ctx, batch, now)
        # The record first: a concurrent twin waits on its key here, before writing.
        await idempotency.remember(
            session, tenant=ctx.tenant, key=key, request_hash=request_hash, now=now,
            response_enc=ctx.keys.encrypt(answer.model_dump_json(),
                                          field=idempotency.RESPONSE_FIELD))
        await write_rows(session, rows)
    return answer, False

