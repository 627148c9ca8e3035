"""Operator API keys: the prefix finds the row, the secret is stored as SHA-256 only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class OperatorKey(Base):
    __tablename__ = "operator_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BreakGlassGrant(Base):
    """An operator's time-boxed access to one account's message content, with a reason.

    The account sees each grant (``GET /v1/account/break-glass``) and each read under it
    in its audit events; the reason is kept encrypted under the account's keys.
    """

    __tablename__ = "break_glass_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    operator_id: Mapped[str] = mapped_column(String(40))
    reason_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
