"""The verification an account passes before it is served, the numbers a trial account
has proved it controls, and how many messages a trial account has sent.

The contact's name, address and phone and the intended use (text a person wrote) are
personal data: ciphertexts under the account's key. The company's legal name, country
and registration number are the company's public identity and stay readable, so the
operator's list can show them without opening every account's keys.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    AUTHENTICATION,
    DETERMINISTIC_ID,
    EMAIL,
    NAME,
    PHONE,
    PRIVATE_CONTENT,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime

CONTACT_NAME_FIELD = "account_verifications.contact_name"
CONTACT_EMAIL_FIELD = "account_verifications.contact_email"
CONTACT_PHONE_FIELD = "account_verifications.contact_phone"
INTENDED_USE_FIELD = "account_verifications.intended_use"
VERIFIED_NUMBER_FIELD = "verified_numbers.number"


class VerificationStatus(StrEnum):
    AWAITING_DETAILS = "awaiting_details"  # signed up; the owner has not filled it in
    SUBMITTED = "submitted"  # filled in: the operator decides
    APPROVED = "approved"  # the account is trial or active
    REJECTED = "rejected"  # the operator said no, with a reason; the owner may resubmit


class AccountVerification(Base):
    """One per account: what the owner told about the company, and the decision."""

    __tablename__ = "account_verifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True, unique=True,
                                           info=operational())
    status: Mapped[str] = mapped_column(String(20), info=operational())
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The company's public identity (see above): not personal data.
    legal_name: Mapped[str | None] = mapped_column(String(200), info=operational())
    country: Mapped[str | None] = mapped_column(String(2), info=operational())  # ISO 3166-1 alpha-2
    registration_number: Mapped[str | None] = mapped_column(String(100), info=operational())
    contact_name_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(NAME, ACCOUNT_LIFETIME_RULE))
    contact_email_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(EMAIL, ACCOUNT_LIFETIME_RULE))
    contact_phone_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(PHONE, ACCOUNT_LIFETIME_RULE))
    intended_use_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(PRIVATE_CONTENT, ACCOUNT_LIFETIME_RULE))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision: Mapped[str | None] = mapped_column(String(20),  # trial, active, rejected
                                                 info=operational())
    # The operator's note on its decision: free text, which may name the contact.
    decision_note: Mapped[str | None] = mapped_column(
        String(1000), info=personal(PRIVATE_CONTENT, ACCOUNT_LIFETIME_RULE))
    decided_by: Mapped[str | None] = mapped_column(String(60), info=operational())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VerifiedNumber(Base):
    """A number a trial account may send to once it gave back the code sent there.

    The blind index is under the account's own key (unlike ``phone_numbers``): several
    trial accounts may verify the same phone, and none may learn that another did.
    """

    __tablename__ = "verified_numbers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    number_enc: Mapped[bytes] = mapped_column(LargeBinary,
                                              info=personal(PHONE, ACCOUNT_LIFETIME_RULE))
    number_index: Mapped[str] = mapped_column(
        String(64), index=True, info=personal(DETERMINISTIC_ID, ACCOUNT_LIFETIME_RULE))
    # A one-time code that proves the account controls the number: no person's login.
    code_hash: Mapped[str] = mapped_column(String(64), info=operational(AUTHENTICATION))
    attempts: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrialUsage(Base):
    """Messages a trial account has sent: the one counter every process updates, under
    a row lock, in the transaction that stores the messages."""

    __tablename__ = "trial_usage"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                           info=operational())
    messages_sent: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
