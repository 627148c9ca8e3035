"""HTTP endpoints of messages: send, send in bulk, read, list, cancel. The send path
itself is ``sending.py``, shared with the SMPP gateway and the fast single send."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import AwareDatetime

from tidings.accounts.deps import MayReadMessages, MaySendMessages
from tidings.messaging.addresses import AddressError, normalize_e164
from tidings.messaging.lifecycle import Status
from tidings.messaging.schemas import (
    BatchResponse,
    Channel,
    Direction,
    MessageOut,
    MessagePage,
    SendBatch,
    SendMessage,
)
from tidings.messaging.sending import (
    create_one,
    create_one_idempotent,
    prepare_batch,
    prepare_send,
    store_batch,
)
from tidings.messaging.service import (
    MessageFilters,
    cipher_of,
    do_cancel_message,
    get_events,
    get_message,
    list_messages,
    message_out,
)
from tidings.messaging.views import as_seen_by
from tidings.storage.subject_keys import ciphers_of
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import InvalidRequest, NotFound, problem_responses
from tidings.webhooks.service import DELIVER_JOB

router = APIRouter(prefix="/v1/messages", tags=["messages"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)
MESSAGE_ID = re.compile(r"^msg_[0-9a-z]{26}$")
# No control characters: a NUL would break the PostgreSQL column it is stored in.
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                    max_length=255,
                                                    pattern=r"^[^\x00-\x1f\x7f]+$")]


@router.post("", status_code=201, response_model=MessageOut, summary="Send a message",
             operation_id="send_message", responses=problem_responses(409, 413))
async def send_message(body: SendMessage, rt: RuntimeDep, principal: MaySendMessages,
                       response: Response,
                       idempotency_key: IdempotencyKeyHeader = None) -> MessageOut:
    ctx, draft = await prepare_send(rt, principal, body)
    if idempotency_key is None:
        return await create_one(rt, ctx, draft)
    message, replayed = await create_one_idempotent(
        rt, ctx, draft, key=idempotency_key, request=body.model_dump(mode="json", by_alias=True))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return message


@router.post("/batch", response_model=BatchResponse,
             summary="Send one template to many recipients",
             operation_id="send_batch", responses=problem_responses(409, 413))
async def send_batch(body: SendBatch, rt: RuntimeDep, principal: MaySendMessages,
                     response: Response,
                     idempotency_key: IdempotencyKeyHeader = None) -> BatchResponse:
    ctx, batch = await prepare_batch(rt, principal, body)
    answer, replayed = await store_batch(
        rt, ctx, batch, key=idempotency_key,
        request=body.model_dump(mode="json", by_alias=True) if idempotency_key else None)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return answer


@router.get("/{message_id}", response_model=MessageOut, summary="A message and its history",
            operation_id="get_message")
async def read_message(message_id: str, rt: RuntimeDep,
                       principal: MayReadMessages) -> MessageOut:
    _check_id(message_id)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        message = await get_message(session, tenant=principal.tenant, message_id=message_id)
        events = await get_events(session, tenant=principal.tenant, message_id=message_id)
    cipher = await cipher_of(keys, message)
    return as_seen_by(message_out(message, cipher, events), principal.permissions)


@router.get("", response_model=MessagePage, summary="List messages, newest first",
            dependencies=[KnownQueryOnly], operation_id="list_messages")
async def list_endpoint(
    rt: RuntimeDep, principal: MayReadMessages,
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
    ciphers = await ciphers_of(keys, rows)
    return MessagePage(data=[as_seen_by(message_out(m, ciphers[m.id]), principal.permissions)
                             for m in rows], next_cursor=next_cursor)


@router.post("/{message_id}/cancel", response_model=MessageOut,
             summary="Cancel a scheduled message",
             operation_id="cancel_message", responses=problem_responses(409))
async def cancel_message(message_id: str, rt: RuntimeDep,
                         principal: MaySendMessages) -> MessageOut:
    _check_id(message_id)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        message = await do_cancel_message(session, tenant=principal.tenant,
                                          message_id=message_id,
                                          webhooks=principal.webhooks, now=rt.clock.now())
    rt.wakeups.notify(DELIVER_JOB)
    rt.metrics.count_moves({"canceled": 1})
    return message_out(message, await cipher_of(keys, message))


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
