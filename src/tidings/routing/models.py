"""The operator's connectors and routing rules (operator data: no tenant, no personal data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import AUTHENTICATION, operational
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class ConnectorConfig(Base):
    """One carrier connection. Its secrets (passwords, tokens) are stored encrypted."""

    __tablename__ = "connectors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    name: Mapped[str] = mapped_column(String(60), unique=True, info=operational())
    kind: Mapped[str] = mapped_column(String(20), info=operational())
    channels: Mapped[list[str]] = mapped_column(JSON, info=operational())
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, info=operational())
    secrets_enc: Mapped[bytes] = mapped_column(LargeBinary, info=operational(AUTHENTICATION))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The company behind the carrier, in the sub-processor register: routing gives the
    # connector an account's messages only once it is in effect for that account. NULL:
    # the operator's own (the sandbox, a relay it runs itself).
    subprocessor_id: Mapped[str | None] = mapped_column(ForeignKey("subprocessors.id"),
                                                        info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RouteRule(Base):
    """A routing rule; see ``tidings.routing.rules`` for how rules are chosen."""

    __tablename__ = "routes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    priority: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20), info=operational())
    prefix: Mapped[str | None] = mapped_column(String(16), info=operational())
    country: Mapped[str | None] = mapped_column(String(2), info=operational())
    # A sender id the operator routes by (a short code, an alphanumeric sender, a
    # client's number): operator data, as every rule here.
    sender: Mapped[str | None] = mapped_column(String(32), info=operational())
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), info=operational())
    # [{"connector": name, "weight": n}, ...] in failover order
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConnectorError(Base):
    """A problem a carrier reported about a connector rather than about one message (a
    WhatsApp rate-limit notice...): its code and title only, never personal data."""

    __tablename__ = "connector_errors"
    __table_args__ = (Index("ix_connector_errors_connector_id", "connector", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    connector: Mapped[str] = mapped_column(String(60), info=operational())
    code: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200), info=operational())
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
