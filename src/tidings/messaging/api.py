"""HTTP endpoints of messages: send, send in bulk, read, list, cancel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import AwareDatetime
from sqlalchemy.exc import IntegrityError

from tidings.accounts.auth import Principal
from tidings.accounts.models import SENDING_STATUSES
from tidings.core.services import Services
from tidings.messaging import idempotency
from tidings.messaging.addresses import AddressError, normalize_e164
from tidings.messaging.drafts import Draft, SendOptions, check_options, make_draft, render_template
from tidings.messaging.lifecycle import Status
from tidings.messaging.schemas import (
    MAX_BODY_CHARS,
    BatchError,
    BatchResponse,
    BatchResult,
    Channel,
    Direction,
    MessageOut,
    MessagePage,
    SendBatch,
    SendMessage,
)
from tidings.messaging.service import (
    MessageFilters,
    SendContext,
    build_messages,
    created_out,
    do_cancel_message,
    do_create_messages,
    get_events,
    get_message,
    list_messages,
    message_out,
)
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.storage.writer import Rows, write_rows
from tidings.web.deps import (
    PROBLEMS_OF_API_KEY_ROUTES,
    CurrentPrincipal,
    KnownQueryOnly,
    RuntimeDep,
)
from tidings.web.errors import Forbidden, InvalidRequest, NotFound, problem_responses
from tidings.webhooks.destinations import check_webhook_url
from tidings.webhooks.service import DELIVER_JOB
from tidings.whatsapp.service import check_customer_service_window

router = APIRouter(prefix="/v1/messages", tags=["messages"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)
MESSAGE_ID = re.compile(r"^msg_[0-9a-z]{26}$")
# No control characters: a NUL would break the PostgreSQL column it is stored in.
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                    max_length=255,
                                                    pattern=r"^[^\x00-\x1f\x7f]+$")]


def ensure_can_send(principal: Principal) -> None:
    if principal.account_status not in SENDING_STATUSES:
        raise Forbidden(f"The account is {principal.account_status} and cannot send.",
                        code=f"account_{principal.account_status}")


async def _context(rt: Services, principal: Principal) -> SendContext:
    keys = await rt.vault.keys_for(principal.tenant)
    return SendContext(principal.tenant, keys, principal.actor, principal.webhooks)


def _options(rt: Services, body: SendMessage | SendBatch) -> SendOptions:
    check_webhook_url(body.status_callback, field="status_callback",
                      allow_private=rt.settings.webhook_allow_private)
    return check_options(sender=body.from_, channel=body.channel,
                         status_callback=body.status_callback, send_at=body.send_at,
                         validity_period=body.validity_period, now=rt.clock.now())


@router.post("", status_code=201, response_model=MessageOut, summary="Send a message",
             operation_id="send_message", responses=problem_responses(409, 413))
async def send_message(body: SendMessage, rt: RuntimeDep, principal: CurrentPrincipal,
                       response: Response,
                       idempotency_key: IdempotencyKeyHeader = None) -> MessageOut:
    ctx, draft = await prepare_send(rt, principal, body)
    if idempotency_key is None:
        return await create_one(rt, ctx, draft)
    request_hash = idempotency.fingerprint(ctx.keys, body.model_dump(mode="json", by_alias=True),
                                           endpoint=idempotency.SINGLE_SEND)
    try:
        return await _create_idempotent(rt, ctx, draft, idempotency_key, request_hash, response)
    except IntegrityError:  # a concurrent request with the same key won the race
        return await _create_idempotent(rt, ctx, draft, idempotency_key, request_hash, response)


async def prepare_send(rt: Services, principal: Principal,
                       body: SendMessage) -> tuple[SendContext, Draft]:
    """Everything a send checks before it writes; raises ``TidingsError`` on a bad one."""
    ensure_can_send(principal)
    if body.channel != "email":  # an email's length is the schema's to bound
        check_body(rt, body.body)
    draft = make_draft(_options(rt, body), to=body.to, body=body.body, now=rt.clock.now(),
                       subject=body.subject, html=body.html, whatsapp=_whatsapp(body),
                       fallback=(tuple(body.channels[1:]) if body.channels else (),
                                 body.fallback_after))
    if draft.channel == "whatsapp" and not draft.fallback_channels:
        # With a fallback, a closed window is a failure like any other: the next goes.
        await check_customer_service_window(rt, principal.tenant, draft)
    return await _context(rt, principal), draft


def _whatsapp(body: SendMessage) -> dict[str, Any] | None:
    if body.template is not None:
        return {"template": body.template.model_dump()}
    if body.media is not None:
        return {"media": body.media.model_dump()}
    return None


async def create_one(rt: Services, ctx: SendContext, draft: Draft) -> MessageOut:
    """Store one checked message; returns once it is durable."""
    rows, created = build_messages(ctx, [draft], rt.clock.now())
    await rt.writer.write(ctx.tenant, rows)
    _after_create(rt, draft.channel, 1, webhooks=_has_webhooks(ctx, draft.status_callback))
    return created_out(created[0])


async def _create_idempotent(rt: Services, ctx: SendContext, draft: Draft, key: str,
                             request_hash: str, response: Response) -> MessageOut:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=ctx.tenant) as session:
        replay = await idempotency.find_replay(session, tenant=ctx.tenant, key=key,
                                               request_hash=request_hash)
        if replay is not None and replay.message_id is not None:
            response.headers["Idempotent-Replayed"] = "true"
            message = await get_message(session, tenant=ctx.tenant, message_id=replay.message_id)
            return message_out(message, ctx.keys)
        created = await do_create_messages(session, ctx=ctx, drafts=[draft], now=now)
        await idempotency.remember(session, tenant=ctx.tenant, key=key,
                                   request_hash=request_hash, message_id=created[0].row["id"],
                                   now=now)
    _after_create(rt, draft.channel, 1, webhooks=_has_webhooks(ctx, draft.status_callback))
    return created_out(created[0])


def _has_webhooks(ctx: SendContext, status_callback: str | None) -> bool:
    return any(ctx.webhooks.urls_for(Status.QUEUED, status_callback))


def _after_create(rt: Services, channel: str, count: int, *, webhooks: bool) -> None:
    rt.wakeups.notify(DISPATCH_JOB, *([DELIVER_JOB] if webhooks else []))
    rt.metrics.messages_created.labels(channel, "outbound").inc(count)


@router.post("/batch", response_model=BatchResponse,
             summary="Send one template to many recipients",
             operation_id="send_batch", responses=problem_responses(409, 413))
async def send_batch(body: SendBatch, rt: RuntimeDep, principal: CurrentPrincipal,
                     response: Response,
                     idempotency_key: IdempotencyKeyHeader = None) -> BatchResponse:
    ctx, batch = await _prepare_batch(rt, principal, body)
    if idempotency_key is None:
        rows, answer = batch.build(ctx, rt.clock.now())
        if batch.drafts:
            await rt.writer.write(ctx.tenant, rows)
    else:
        request_hash = idempotency.fingerprint(
            ctx.keys, body.model_dump(mode="json", by_alias=True),
            endpoint=idempotency.BATCH_SEND)
        try:
            answer = await _batch_idempotent(rt, ctx, batch, idempotency_key, request_hash)
        except IntegrityError:  # a concurrent request with the same key won the race
            answer = await _batch_idempotent(rt, ctx, batch, idempotency_key, request_hash)
        if answer.replayed:
            response.headers["Idempotent-Replayed"] = "true"
            return answer.response
    _after_create(rt, batch.channel, len(batch.drafts),
                  webhooks=_has_webhooks(ctx, batch.status_callback))
    return answer.response


@dataclass
class _Batch:
    """A checked batch: the drafts to store and each recipient's place in the answer."""

    channel: str
    status_callback: str | None
    drafts: list[tuple[int, Draft]]
    results: list[BatchResult | None]

    def build(self, ctx: SendContext, now: datetime) -> tuple[Rows, _BatchAnswer]:
        rows, created = build_messages(ctx, [d for _, d in self.drafts], now)
        results = list(self.results)
        for (index, draft), item in zip(self.drafts, created, strict=True):
            results[index] = BatchResult(index=index, status="accepted",
                                         message_id=item.row["id"], to=draft.to,
                                         num_segments=draft.num_segments)
        final = [r for r in results if r is not None]
        return rows, _BatchAnswer(BatchResponse(
            accepted=len(created), rejected=len(final) - len(created), results=final))


@dataclass(frozen=True)
class _BatchAnswer:
    response: BatchResponse
    replayed: bool = False


async def _prepare_batch(rt: Services, principal: Principal,
                         body: SendBatch) -> tuple[SendContext, _Batch]:
    """Everything a batch checks before it writes; a bad recipient is only rejected."""
    ensure_can_send(principal)
    if len(body.recipients) > rt.settings.batch_max_recipients:
        raise InvalidRequest(f"A batch takes at most {rt.settings.batch_max_recipients} "
                             "recipients.", code="too_many_recipients")
    options, now = _options(rt, body), rt.clock.now()
    if options.channel != "sms":
        raise InvalidRequest("Batch sends are SMS only; send emails one by one.",
                             code="channel_unavailable")
    batch = _Batch(options.channel, options.status_callback, [], [])
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
    return await _context(rt, principal), batch


async def _batch_idempotent(rt: Services, ctx: SendContext, batch: _Batch, key: str,
                            request_hash: str) -> _BatchAnswer:
    """Replay the stored answer, or store the batch and its answer in one transaction."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=ctx.tenant) as session:
        replay = await idempotency.find_replay(session, tenant=ctx.tenant, key=key,
                                               request_hash=request_hash)
        if replay is not None and replay.response_enc is not None:
            stored = ctx.keys.decrypt(replay.response_enc, field=idempotency.RESPONSE_FIELD)
            return _BatchAnswer(BatchResponse.model_validate_json(stored), replayed=True)
        rows, answer = batch.build(ctx, now)
        # The record first: a concurrent twin waits on its key here, before writing.
        await idempotency.remember(
            session, tenant=ctx.tenant, key=key, request_hash=request_hash, now=now,
            response_enc=ctx.keys.encrypt(answer.response.model_dump_json(),
                                          field=idempotency.RESPONSE_FIELD))
        await write_rows(session, rows)
    return answer


@router.get("/{message_id}", response_model=MessageOut, summary="A message and its history",
            operation_id="get_message")
async def read_message(message_id: str, rt: RuntimeDep,
                       principal: CurrentPrincipal) -> MessageOut:
    _check_id(message_id)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        message = await get_message(session, tenant=principal.tenant, message_id=message_id)
        events = await get_events(session, tenant=principal.tenant, message_id=message_id)
    return message_out(message, keys, events)


@router.get("", response_model=MessagePage, summary="List messages, newest first",
            dependencies=[KnownQueryOnly], operation_id="list_messages")
async def list_endpoint(
    rt: RuntimeDep, principal: CurrentPrincipal,
    status: Annotated[Status | None, Query()] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[Channel | None, Query()] = None,
    direction: Annotated[Direction | None, Query()] = None,
    created_after: Annotated[AwareDatetime | None, Query()] = None,
    created_before: Annotated[AwareDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> MessagePage:
    filters = MessageFilters(status=status, to=_number_filter(to), channel=channel,
                             direction=direction, created_after=created_after,
                             created_before=created_before)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        rows, next_cursor = await list_messages(session, tenant=principal.tenant, keys=keys,
                                                filters=filters, cursor=cursor, limit=limit)
    return MessagePage(data=[message_out(m, keys) for m in rows], next_cursor=next_cursor)


@router.post("/{message_id}/cancel", response_model=MessageOut,
             summary="Cancel a scheduled message",
             operation_id="cancel_message", responses=problem_responses(409))
async def cancel_message(message_id: str, rt: RuntimeDep,
                         principal: CurrentPrincipal) -> MessageOut:
    _check_id(message_id)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        message = await do_cancel_message(session, tenant=principal.tenant,
                                          message_id=message_id,
                                          webhooks=principal.webhooks, now=rt.clock.now())
    rt.wakeups.notify(DELIVER_JOB)
    rt.metrics.count_moves({"canceled": 1})
    return message_out(message, keys)


def check_body(rt: Services, text: str, *, rendered: bool = False) -> None:
    """The configured length limit (the schema only caps what a request may carry)."""
    what = "rendered body" if rendered else "body"
    if not text:
        raise InvalidRequest(f"The {what} is empty.", code="body_empty")
    limit = min(rt.settings.message_body_max_chars, MAX_BODY_CHARS)
    if len(text) > limit:
        raise InvalidRequest(f"The {what} is longer than {limit} characters.",
                             code="body_too_long")


def _check_id(message_id: str) -> None:
    if not MESSAGE_ID.match(message_id):
        raise NotFound(f"No message {message_id[:60]!r}.", code="message_not_found")


def _number_filter(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return normalize_e164(raw)
    except AddressError as exc:
        raise InvalidRequest(str(exc), code=exc.code) from None
