"""Accounts (tenants) and their API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    AUTHENTICATION,
    CONTACT,
    PRIVATE_CONTENT,
    operational,
    personal,
)
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

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True,
                                                  info=operational())
    name: Mapped[str] = mapped_column(String(200), info=operational())  # the company's
    status: Mapped[str] = mapped_column(String(30), info=operational())
    webhook_url: Mapped[str | None] = mapped_column(String(2048), info=operational())  # its own
    # Comma-separated statuses whose changes are POSTed; NULL: every change.
    webhook_statuses: Mapped[str | None] = mapped_column(String(300), info=operational())
    webhook_secret_enc: Mapped[bytes] = mapped_column(LargeBinary, info=operational(AUTHENTICATION))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Why it is suspended or terminated, under the account's data key (free text).
    status_reason_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(PRIVATE_CONTENT, ACCOUNT_LIFETIME_RULE))
    # Who suspended it ("operator", or the id of the account above it that did), and
    # the status a resume restores.
    suspended_by: Mapped[str | None] = mapped_column(String(60), info=operational())
    suspended_from: Mapped[str | None] = mapped_column(String(30), info=operational())


class AccountRights(Base):
    """What a sub-account may do, set by an account above it; NULL: no restriction
    beyond its parent's. ``tenant_id`` is the sub-account's parent, whose decision this
    is (migration 0016 says why)."""

    __tablename__ = "account_rights"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                            info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    channels: Mapped[str | None] = mapped_column(String(100), info=operational())  # space-separated
    # A JSON list under the parent's data key: a sender may be a phone number or address.
    sender_ids_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(CONTACT, ACCOUNT_LIFETIME_RULE))
    monthly_message_cap: Mapped[int | None] = mapped_column(BigInteger)
    requests_per_second: Mapped[int | None] = mapped_column(Integer)
    may_create_subaccounts: Mapped[bool | None] = mapped_column(Boolean)
    may_manage_users: Mapped[bool | None] = mapped_column(Boolean)
    revision: Mapped[int] = mapped_column(Integer)  # one more at every change
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageCount(Base):
    """Outbound messages of an account in a UTC month (``YYYY-MM``), kept while it
    has a monthly cap and updated in the transaction of the messages it counts."""

    __tablename__ = "message_counts"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                           info=operational())
    month: Mapped[str] = mapped_column(String(7), primary_key=True, info=operational())
    count: Mapped[int] = mapped_column(BigInteger)
    # The rights it was counted under: other rights, count the month again.
    rights_version: Mapped[str] = mapped_column(String(40), info=operational())


class ApiKey(Base):
    """An API key: the prefix finds the row, the secret is stored as SHA-256 only."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    prefix: Mapped[str] = mapped_column(String(24), unique=True, info=operational(AUTHENTICATION))
    secret_hash: Mapped[str] = mapped_column(String(64), info=operational(AUTHENTICATION))
    name: Mapped[str] = mapped_column(String(200), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Space-separated permissions; NULL: every permission of the account.
    scopes: Mapped[str | None] = mapped_column(String(600), info=operational(AUTHENTICATION))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Space-separated CIDRs the key may be used from; NULL: anywhere. The client's
    # servers' networks, not a person's device: access control data.
    allowed_ips: Mapped[str | None] = mapped_column(String(2000), info=operational(AUTHENTICATION))
    created_by: Mapped[str | None] = mapped_column(String(60),  # "user:usr_…", say
                                                   info=operational())
