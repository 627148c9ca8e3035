"""Audit events: field names and row ids, never values; hash-chained per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import operational
from tidings.storage.db import Base, BigIntPK
from tidings.storage.sqltypes import UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_audit_events_unsealed", "seq", "tenant_id"),
    )

    id: Mapped[int] = mapped_column(
        BigIntPK, primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    actor_type: Mapped[str] = mapped_column(String(20), info=operational())
    actor_id: Mapped[str] = mapped_column(String(100), info=operational())
    action: Mapped[str] = mapped_column(String(40), info=operational())
    table_name: Mapped[str] = mapped_column(String(60), info=operational())
    row_id: Mapped[str] = mapped_column(String(40), info=operational())
    fields: Mapped[list[str]] = mapped_column(JSON, info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The API request that made the change (``core.request_ids``); None for events from
    # before migration 0021 and for work no request started (the CLI, SMPP, chores).
    request_id: Mapped[str | None] = mapped_column(String(128), info=operational())
    # Filled by the sealer, in commit order, so writers never queue on a chain head.
    seq: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str | None] = mapped_column(String(64), info=operational())
    hash: Mapped[str | None] = mapped_column(String(64), info=operational())
