"""Accounts (tenants) and their API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class AccountStatus(StrEnum):
    PENDING_VERIFICATION = "pending_verification"
    TRIAL = "trial"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


SENDING_STATUSES = frozenset({AccountStatus.TRIAL, AccountStatus.ACTIVE})


class Account(Base):
    """A client account; its id is the tenant id of everything it owns."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # Comma-separated statuses whose changes are POSTed; NULL: every change.
    webhook_statuses: Mapped[str | None] = mapped_column(String(300))
    webhook_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """An API key: the prefix finds the row, the secret is stored as SHA-256 only."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Space-separated permissions; NULL: every permission of the account.
    scopes: Mapped[str | None] = mapped_column(String(600))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Space-separated CIDRs the key may be used from; NULL: anywhere.
    allowed_ips: Mapped[str | None] = mapped_column(String(2000))
    created_by: Mapped[str | None] = mapped_column(String(60))  # "user:usr_…", say
