"""Webhook deliveries and every attempt at them.

Payloads are rendered at send time from the message, so no personal data is
copied into these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import operational
from tidings.storage.db import Base, BigIntPK
from tidings.storage.sqltypes import UTCDateTime


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    event_id: Mapped[str] = mapped_column(String(40),  # sent with the POST, never looked up
                                          info=operational())
    event_type: Mapped[str] = mapped_column(String(40), info=operational())
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), index=True,
                                            info=operational())
    sequence: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2048), info=operational())
    status: Mapped[str] = mapped_column(String(20),  # pending, succeeded, failed
                                        info=operational())
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Read by delivery only: no index on the tenant alone (each attempt would pay for it).
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True,
                                             info=operational())
    number: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300), info=operational())
    duration_ms: Mapped[int] = mapped_column(Integer)
    # What the client's endpoint answered is not kept: its length only (personal data
    # may be in it, and a URL to an internal service would be read through it).
    response_bytes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
