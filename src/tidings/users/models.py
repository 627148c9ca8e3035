"""People who log in, their sessions, earlier passwords and recovery codes.

A user belongs to one account (``tenant_id``), or to none: the operator's staff, whose
rows only the cross-tenant role sees. The e-mail address is personal data: it is kept
encrypted under the account's keys (the platform's for staff), and found through a
blind index under the platform's index key, one for the whole platform, because a
person logs in with an address before anyone knows the account. Passwords and
recovery codes are kept as hashes, the TOTP secret encrypted, session tokens as
keyed hashes: nothing here logs anyone in if copied.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    CREDENTIALS,
    CREDENTIALS_RULE,
    DETERMINISTIC_ID,
    EMAIL,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True,
                                                  info=operational())
    email_enc: Mapped[bytes] = mapped_column(LargeBinary,
                                             info=personal(EMAIL, ACCOUNT_LIFETIME_RULE))
    email_index: Mapped[str] = mapped_column(String(64), unique=True,
                                             info=personal(DETERMINISTIC_ID, ACCOUNT_LIFETIME_RULE))
    role: Mapped[str] = mapped_column(String(30), info=operational())
    status: Mapped[str] = mapped_column(String(20), info=operational())
    password_hash: Mapped[str] = mapped_column(String(200),
                                               info=personal(CREDENTIALS, CREDENTIALS_RULE))
    # A temporary password must be changed at the first login, and lapses at this time.
    password_temporary_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mfa_secret_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(CREDENTIALS, CREDENTIALS_RULE))
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mfa_last_step: Mapped[int | None] = mapped_column(Integer)  # a used TOTP step is refused
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class _OfAUser:
    """A row that belongs to a user: its id, the user's account (none for staff), the user."""

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())

    @declared_attr
    def tenant_id(cls) -> Mapped[str | None]:
        return mapped_column(ForeignKey("accounts.id"), index=True, info=operational())

    @declared_attr
    def user_id(cls) -> Mapped[str]:
        return mapped_column(ForeignKey("users.id"), index=True, info=operational())


class UserSession(_OfAUser, Base):
    """A login: the bearer token's keyed hash, never the token."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True,
                                            info=personal(CREDENTIALS, CREDENTIALS_RULE))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordHistory(_OfAUser, Base):
    """Earlier password hashes of a user: the last few may not be used again."""

    __tablename__ = "password_history"

    password_hash: Mapped[str] = mapped_column(String(200),
                                               info=personal(CREDENTIALS, CREDENTIALS_RULE))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecoveryCode(_OfAUser, Base):
    """A single-use code that stands in for the second factor, kept as a keyed hash."""

    __tablename__ = "recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), info=personal(CREDENTIALS, CREDENTIALS_RULE))
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
