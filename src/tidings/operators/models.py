"""Operator API keys: the prefix finds the row, the secret is stored as SHA-256 only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    AUTHENTICATION,
    BREAK_GLASS_RULE,
    PRIVATE_CONTENT,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class OperatorKey(Base):
    __tablename__ = "operator_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    prefix: Mapped[str] = mapped_column(String(24), unique=True, info=operational(AUTHENTICATION))
    secret_hash: Mapped[str] = mapped_column(String(64), info=operational(AUTHENTICATION))
    name: Mapped[str] = mapped_column(String(200), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BreakGlassGrant(Base):
    """An operator's time-boxed access to one account's message content, with a reason.

    The account sees each grant (``GET /v1/account/break-glass``) and each read under it
    in its audit events; the reason is kept encrypted under the account's keys.
    """

    __tablename__ = "break_glass_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    operator_id: Mapped[str] = mapped_column(String(40), info=operational())
    # Free text, which may name a person whose messages the operator must read.
    reason_enc: Mapped[bytes] = mapped_column(LargeBinary,
                                              info=personal(PRIVATE_CONTENT, BREAK_GLASS_RULE))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
