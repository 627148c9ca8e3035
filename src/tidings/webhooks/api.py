"""HTTP endpoints to inspect webhook deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tidings.accounts.deps import MayManageWebhooks
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import problem_responses
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery
from tidings.webhooks.service import DELIVER_JOB, get_delivery, list_deliveries, resend_delivery

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhooks"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AttemptOut(BaseModel):
    number: int
    status_code: int | None
    error: str | None
    duration_ms: int
    response_bytes: int | None = Field(
        description="Length of the endpoint's answer (at most 64 KiB are read); its "
                    "content is not kept.")
    created_at: datetime


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    message_id: str
    sequence: int
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempt_log: list[AttemptOut] | None = None


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


def delivery_out(d: WebhookDelivery, attempts: list[WebhookAttempt] | None = None) -> DeliveryOut:
    return DeliveryOut(
        id=d.id, event_id=d.event_id, event_type=d.event_type, message_id=d.message_id,
        sequence=d.sequence, url=d.url, status=d.status, attempts=d.attempts,
        next_attempt_at=d.next_attempt_at, last_status_code=d.last_status_code,
        last_error=d.last_error, created_at=d.created_at, completed_at=d.completed_at,
        attempt_log=None if attempts is None else [
            AttemptOut(number=a.number, status_code=a.status_code, error=a.error,
                       duration_ms=a.duration_ms, response_bytes=a.response_bytes,
                       created_at=a.created_at) for a in attempts])


@router.get("", response_model=DeliveryPage, summary="Webhook deliveries, newest first",
            dependencies=[KnownQueryOnly], operation_id="list_webhook_deliveries")
async def list_endpoint(
    rt: RuntimeDep, principal: MayManageWebhooks,
    message_id: Annotated[str | None, Query(pattern=r"^msg_[0-9a-z]{26}$")] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=40, pattern="^whd_[0-9a-z]+$")] = None,
) -> DeliveryPage:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        rows = await list_deliveries(session, tenant=principal.tenant, message_id=message_id,
                                     status=status, cursor=cursor, limit=limit + 1)
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return DeliveryPage(data=[delivery_out(d) for d in rows[:limit]], next_cursor=next_cursor)


@router.get("/{delivery_id}", response_model=DeliveryOut,
            summary="One delivery with every attempt", operation_id="get_webhook_delivery")
async def read_delivery(delivery_id: str, rt: RuntimeDep,
                        principal: MayManageWebhooks) -> DeliveryOut:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        delivery, attempts = await get_delivery(session, tenant=principal.tenant,
                                                delivery_id=delivery_id[:40])
    return delivery_out(delivery, attempts)


@router.post("/{delivery_id}/resend", status_code=201, response_model=DeliveryOut,
             summary="Send a finished delivery's event again",
             operation_id="resend_webhook_delivery", responses=problem_responses(409))
async def resend(delivery_id: str, rt: RuntimeDep, principal: MayManageWebhooks) -> DeliveryOut:
    """A new delivery of the same event (same ``Tidings-Event-Id``) to the same URL."""
    async with rt.db.transaction(tenant=principal.tenant) as session:
        resent = await resend_delivery(session, tenant=principal.tenant,
                                       delivery_id=delivery_id[:40], actor=principal.actor,
                                       now=rt.clock.now())
        out = delivery_out(resent)
    rt.wakeups.notify(DELIVER_JOB)
    return out
