"""Phone numbers and email addresses an account owns (where its inbound messages
arrive), and the claims that prove an account may own one.

A number is personal data like any other address: it is stored encrypted under the
account's data key. Its blind index is under the platform's index key, not the
account's, because a number belongs to at most one account across all of them and an
inbound message must find that account without knowing it first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    AUTHENTICATION,
    CONTACT,
    DETERMINISTIC_ID,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime

NUMBER_FIELD = "phone_numbers.number"  # ciphertext (account key) and index (platform key)
CLAIM_NUMBER_FIELD = "number_claims.number"


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    number_enc: Mapped[bytes] = mapped_column(LargeBinary,  # E.164 or an email address
                                              info=personal(CONTACT, ACCOUNT_LIFETIME_RULE))
    number_index: Mapped[str] = mapped_column(  # under the platform's index key
        String(64), unique=True, info=personal(DETERMINISTIC_ID, ACCOUNT_LIFETIME_RULE))
    # Where inbound messages to this number are POSTed; None: the account's URL.
    webhook_url: Mapped[str | None] = mapped_column(String(2048), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NumberClaim(Base):
    """A pending claim: the code sent to the number, as a keyed hash only."""

    __tablename__ = "number_claims"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    number_enc: Mapped[bytes] = mapped_column(LargeBinary,
                                              info=personal(CONTACT, ACCOUNT_LIFETIME_RULE))
    # None when no code was sent (another account holds the number): nothing matches.
    # A one-time code that proves the account controls a number: no person's login.
    code_hash: Mapped[str | None] = mapped_column(String(64), info=operational(AUTHENTICATION))
    attempts: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
