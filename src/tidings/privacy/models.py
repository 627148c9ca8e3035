"""What the privacy domain keeps in the application database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    BUNDLE_RULE,
    CONTACT,
    DETERMINISTIC_ID,
    DSR_RECORD_RULE,
    DSR_SUBJECT_RULE,
    PRIVATE_CONTENT,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import Ciphertext, UTCDateTime

REPLAY_ROW = 1


class ErasureReplay(Base):
    """How far this database has applied the key store's erasure ledger: one row.

    It lives in the application database on purpose: a restored backup brings back an
    older value with the older data, and the replay at start-up applies every erasure
    that came after it.
    """

    __tablename__ = "erasure_replay"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)



# --- data subject requests (Art. 15-21 GDPR) ------------------------------------------

# A request's subject is personal data: its address under the account's data key, and
# its blind index (the same token as the person's messages' ``to_index``) to find their
# records. Both are emptied once the person is erased.
REQUEST_SUBJECT_FIELD = "privacy_requests.subject"
REQUEST_NOTE_FIELD = "privacy_requests.note"


class PrivacyRequest(Base):
    """A data subject's request to an account (the controller), and what became of it."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        Index("ix_privacy_requests_tenant_id_received_at", "tenant_id", "received_at"),
        Index("ix_privacy_requests_tenant_id_subject_index", "tenant_id", "subject_index"),
        # The deadline chore's look-up: open requests by due date, across tenants.
        Index("ix_privacy_requests_status_due_at", "status", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    type: Mapped[str] = mapped_column(String(20), info=operational())
    status: Mapped[str] = mapped_column(String(24), info=operational())
    subject_kind: Mapped[str] = mapped_column(String(10), info=operational())  # number or email
    subject_enc: Mapped[bytes | None] = mapped_column(Ciphertext,
                                                      info=personal(CONTACT, DSR_SUBJECT_RULE))
    subject_index: Mapped[str | None] = mapped_column(
        String(64), info=personal(DETERMINISTIC_ID, DSR_SUBJECT_RULE))
    note_enc: Mapped[bytes | None] = mapped_column(Ciphertext,
                                                   info=personal(PRIVATE_CONTENT, DSR_SUBJECT_RULE))
    # A rectification's new address, under the data key, until it is applied.
    rectify_enc: Mapped[bytes | None] = mapped_column(Ciphertext,
                                                      info=personal(CONTACT, DSR_SUBJECT_RULE))
    source: Mapped[str] = mapped_column(String(20),  # api, portal, cli, operator
                                        info=operational())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(
        String(500), info=personal(PRIVATE_CONTENT, DSR_RECORD_RULE))
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What was done, without personal data: counts, the erased key's token, a hold's
    # basis, a rejection's reason, the notices recorded for the subject.
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, info=operational())
    created_by: Mapped[str] = mapped_column(String(80), info=operational())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


BUNDLE_CONTENT_FIELD = "privacy_bundles.content"


class PrivacyBundle(Base):
    """An access or portability bundle, kept (under the account's data key) until it
    expires, for at most seven days; then deleted by the deadlines chore."""

    __tablename__ = "privacy_bundles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id"), unique=True,
                                            info=operational())
    content_enc: Mapped[bytes] = mapped_column(Ciphertext,
                                               info=personal(PRIVATE_CONTENT, BUNDLE_RULE))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LegalHold(Base):
    """A person's data kept whatever they ask (a claim, an investigation): an erasure
    request meets it and stops, ``blocked_legal_hold``, with the hold's basis."""

    __tablename__ = "legal_holds"
    __table_args__ = (
        Index("ix_legal_holds_tenant_id_subject_index", "tenant_id", "subject_index"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    subject_index: Mapped[str | None] = mapped_column(
        String(64), info=personal(DETERMINISTIC_ID, DSR_SUBJECT_RULE))
    basis: Mapped[str] = mapped_column(String(500), info=personal(PRIVATE_CONTENT, DSR_RECORD_RULE))
    created_by: Mapped[str] = mapped_column(String(80), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(80), info=operational())


class SubjectRestriction(Base):
    """A person whose data may be stored but not otherwise processed (Art. 18): no
    message is sent to them while it is in force (``lifted_at`` NULL)."""

    __tablename__ = "subject_restrictions"
    __table_args__ = (
        Index("ix_subject_restrictions_tenant_id_subject_index", "tenant_id",
              "subject_index"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    subject_index: Mapped[str | None] = mapped_column(
        String(64), info=personal(DETERMINISTIC_ID, DSR_SUBJECT_RULE))
    request_id: Mapped[str | None] = mapped_column(ForeignKey("privacy_requests.id"),
                                                   info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(80), info=operational())


class RetentionPolicy(Base):
    """An account's message retention, and how far the daily job has come: one row an
    account, made at its first run or choice."""

    __tablename__ = "retention_policies"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                           info=operational())
    # NULL: the operator's default (TIDINGS_MESSAGE_RETENTION_DAYS).
    message_body_days: Mapped[int | None] = mapped_column(Integer)
    # The id of the last message anonymised: the next run goes on after it.
    anonymised_through: Mapped[str] = mapped_column(String(40), info=operational())
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(80), info=operational())


class RetentionRun(Base):
    """A run of the retention job for an account: its report."""

    __tablename__ = "retention_runs"
    __table_args__ = (
        Index("ix_retention_runs_tenant_id_started_at", "tenant_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    messages: Mapped[int] = mapped_column(Integer)
    keys_destroyed: Mapped[int] = mapped_column(Integer)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountPurge(Base):
    """A terminated account's purge: due six months after termination (sooner when the
    client asks), then done, with its deletion certificate. Kept after the purge: it is
    the evidence, and holds no personal data."""

    __tablename__ = "account_purges"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                           info=operational())
    terminated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purge_due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    certificate_id: Mapped[str | None] = mapped_column(String(40), info=operational())
    certificate: Mapped[dict[str, Any] | None] = mapped_column(JSON, info=operational())
