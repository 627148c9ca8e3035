"""Queue webhook deliveries with the change that causes them; list them for clients."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.jobs.outbox import enqueue_rows, job_row
from tidings.storage.bulk import insert_many
from tidings.storage.db import SessionOrConnection
from tidings.web.errors import Conflict, NotFound
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

DELIVERIES = cast(Table, WebhookDelivery.__table__)

DELIVER_JOB = "webhook.deliver"
STATUS_EVENT = "message.status"
INBOUND_EVENT = "message.inbound"


@dataclass
class WebhookBatch:
    """Deliveries and their jobs gathered in memory, inserted in two statements."""

    deliveries: list[dict[str, Any]]
    jobs: list[dict[str, Any]]

    @classmethod
    def empty(cls) -> WebhookBatch:
        return cls([], [])

    def add(self, *, tenant: str, message_id: str, sequence: int, event_type: str,
            urls: Iterable[str | None], now: datetime) -> None:
        targets = list(dict.fromkeys(u for u in urls if u))
        if not targets:
            return
        event_id = new_id("evt")
        for url in targets:
            delivery_id = new_id("whd")
            self.deliveries.append({
                "id": delivery_id, "tenant_id": tenant, "event_id": event_id,
                "event_type": event_type, "message_id": message_id, "sequence": sequence,
                "url": url, "status": "pending", "attempts": 0, "next_attempt_at": now,
                "last_status_code": None, "last_error": None, "created_at": now,
                "completed_at": None,
            })
            self.jobs.append(job_row(tenant=tenant, kind=DELIVER_JOB, ref_id=delivery_id,
                                     now=now))

    async def flush(self, session: SessionOrConnection) -> bool:
        """Insert what was gathered; True when there is something to deliver."""
        if not self.deliveries:
            return False
        await insert_many(session, DELIVERIES, self.deliveries)
        await enqueue_rows(session, self.jobs)
        self.deliveries, self.jobs = [], []
        return True


async def list_deliveries(session: AsyncSession, *, tenant: str, message_id: str | None,
                          status: str | None, cursor: str | None,
                          limit: int) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant)
    if message_id:
        query = query.where(WebhookDelivery.message_id == message_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if cursor:
        query = query.where(WebhookDelivery.id < cursor)
    query = query.order_by(WebhookDelivery.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def get_delivery(session: AsyncSession, *, tenant: str,
                       delivery_id: str) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    delivery = await session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.tenant_id == tenant))
    if delivery is None:
        raise NotFound(f"No webhook delivery {delivery_id!r}.", code="webhook_delivery_not_found")
    attempts = await session.scalars(select(WebhookAttempt).where(
        WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.tenant_id == tenant)
        .order_by(WebhookAttempt.number))
    return delivery, list(attempts.all())


async def attempts_of(session: AsyncSession, *, tenant: str,
                      delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    """Every attempt of these deliveries in one read, by delivery, in order."""
    found: dict[str, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        rows = await session.scalars(select(WebhookAttempt).where(
            WebhookAttempt.delivery_id.in_(delivery_ids), WebhookAttempt.tenant_id == tenant)
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number))
        for attempt in rows.all():
            found[attempt.delivery_id].append(attempt)
    return found


async def resend_delivery(session: AsyncSession, *, tenant: str, delivery_id: str,
                          actor: Actor, now: datetime) -> WebhookDelivery:
    """Send a finished delivery's event once more, as a new delivery: the same event id
    (``Tidings-Event-Id``, so a receiver that keeps ids sees a repeat), the same URL,
    attempts counted afresh. One still being delivered is a ``Conflict``: it is already
    on its way, and resending it would send it twice."""
    original, _ = await get_delivery(session, tenant=tenant, delivery_id=delivery_id)
    if original.status == "pending":
        raise Conflict("This delivery is still being attempted; wait for its outcome.",
                       code="webhook_delivery_pending")
    batch = WebhookBatch.empty()
    batch.add(tenant=tenant, message_id=original.message_id, sequence=original.sequence,
              event_type=original.event_type, urls=[original.url], now=now)
    [row] = batch.deliveries
    row["event_id"] = original.event_id
    await batch.flush(session)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="webhook.resend",
                                     table="webhook_deliveries", row_id=row["id"],
                                     fields=["event_id", "url"], now=now)])
    resent = await session.get(WebhookDelivery, row["id"])
    assert resent is not None
    return resent
