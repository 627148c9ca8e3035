"""The platform at a glance, for the operator's console: messages a minute over the
last hour, the jobs waiting by kind, the webhook backlog, and each connector's
messages in the last minute and delivery rate over the last day. Every count reads an
indexed range (message ids begin with their creation time) or the small job and
pending-delivery tables."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from tidings.core.ids import id_floor
from tidings.core.services import Services
from tidings.jobs.outbox import Job
from tidings.messaging.models import Message
from tidings.messaging.stats import delivery_rate
from tidings.storage.db import SYSTEM
from tidings.webhooks.models import WebhookDelivery


@dataclass
class ConnectorDay:
    name: str
    by_status: Counter[str] = field(default_factory=Counter)
    last_minute: int = 0  # messages it carried that were created in the last minute

    @property
    def delivery_rate(self) -> float | None:
        return delivery_rate(self.by_status)


@dataclass(frozen=True)
class PlatformNow:
    messages_last_hour: int
    jobs_waiting: dict[str, int]
    webhooks_pending: int
    connectors: list[ConnectorDay]

    @property
    def messages_per_minute(self) -> float:
        return self.messages_last_hour / 60


async def platform_now(rt: Services, now: datetime) -> PlatformNow:
    minute = id_floor("msg", int((now - timedelta(minutes=1)).timestamp() * 1000))
    hour = id_floor("msg", int((now - timedelta(hours=1)).timestamp() * 1000))
    day = id_floor("msg", int((now - timedelta(days=1)).timestamp() * 1000))
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        last_hour = await session.scalar(select(func.count()).select_from(Message)
                                         .where(Message.id >= hour))
        jobs = await session.execute(select(Job.kind, func.count()).group_by(Job.kind))
        pending = await session.scalar(select(func.count()).select_from(WebhookDelivery)
                                       .where(WebhookDelivery.status == "pending"))
        recent = case((Message.id >= minute, 1), else_=0)
        by_connector = await session.execute(
            select(Message.connector, Message.status, func.count(), func.sum(recent))
            .where(Message.id >= day, Message.connector.is_not(None))
            .group_by(Message.connector, Message.status))
    connectors: dict[str, ConnectorDay] = {}
    for name, status, count, last_minute in by_connector.all():
        day_of = connectors.setdefault(str(name), ConnectorDay(str(name)))
        day_of.by_status[status] += count
        day_of.last_minute += int(last_minute or 0)
    return PlatformNow(messages_last_hour=int(last_hour or 0),
                       jobs_waiting={kind: n for kind, n in jobs.all()},
                       webhooks_pending=int(pending or 0),
                       connectors=sorted(connectors.values(), key=lambda c: c.name))
