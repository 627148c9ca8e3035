"""Policy versions the operator publishes, and each client's notice with its answer.

The policies promise that a change is told to every client before it takes effect, and
that a client who does not object in writing within a month of the notice is deemed to
accept it (the DPA: at least thirty days' notice by e-mail). ``policy_versions`` holds
each published version whole, with its text's SHA-256: the operator's own table (no
``tenant_id``, no row-level policy, as ``breaches``), appended and never changed.
``policy_notices`` holds the notice of a version to one client account, the mail ids
that prove it went, and the client's answer (an objection with its reason, or an
explicit acceptance) and the operator's resolution of an objection; it is under the
tenant policy. Whether a silent client has accepted is not stored: it follows from the
clock (``rules.state_of``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    PRIVATE_CONTENT,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime

# What a notice's ciphertexts are bound to (under the client account's data key).
OBJECTION_REASON_FIELD = "policy_notices.objection_reason"
RESOLUTION_NOTE_FIELD = "policy_notices.resolution_note"


class PolicyKind(StrEnum):
    PRIVACY_POLICY = "privacy_policy"
    DPA = "dpa"  # the data processing agreement
    TERMS = "terms"  # the terms of service


class Answer(StrEnum):
    """What a client said of a version; no answer is silence."""

    OBJECTED = "objected"
    ACCEPTED = "accepted"  # explicitly


class Outcome(StrEnum):
    """How the operator closed an objection."""

    WITHDRAWN = "withdrawn"  # the client withdrew it: the version applies to it
    TERMINATING = "terminating"  # the client ends its contract, as the DPA allows
    UPHELD = "upheld"  # the operator agreed: the client keeps the earlier version


class PolicyVersion(Base):
    """One published version of a policy, whole. Appended, never changed."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("kind", "version"),
        # The public page: a kind's versions by when they take effect.
        Index("ix_policy_versions_kind_effective_at", "kind", "effective_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    kind: Mapped[str] = mapped_column(String(20), info=operational())
    version: Mapped[str] = mapped_column(String(40), info=operational())  # "2027-01"
    # The platform's own published text: no one's personal data.
    title: Mapped[str] = mapped_column(String(200), info=operational())
    summary: Mapped[str] = mapped_column(String(4000), info=operational())
    text: Mapped[str] = mapped_column(Text, info=operational())
    sha256: Mapped[str] = mapped_column(String(64), info=operational())  # of the text, UTF-8
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(80), info=operational())
    # One calendar month after publication: objections are taken until then, included.
    objection_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyNotice(Base):
    """A version told to one client account: the mails to its owners, its answer, and
    the operator's resolution of an objection."""

    __tablename__ = "policy_notices"
    # One notice per version and account: a notifying job run twice sends nothing twice.
    __table_args__ = (UniqueConstraint("version_id", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.id"), index=True,
                                            info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    # One mail per active owner; empty with ``undeliverable`` when there is none.
    mail_ids: Mapped[list[str]] = mapped_column(JSON, info=operational())
    undeliverable: Mapped[str | None] = mapped_column(String(40), info=operational())
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified_by: Mapped[str] = mapped_column(String(80), info=operational())
    answer: Mapped[str | None] = mapped_column(String(20), info=operational())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by: Mapped[str | None] = mapped_column(String(80), info=operational())
    # The client's written objection: business correspondence that may name people.
    objection_reason_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(PRIVATE_CONTENT, ACCOUNT_LIFETIME_RULE))
    resolution: Mapped[str | None] = mapped_column(String(20), info=operational())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(80), info=operational())
    # The operator's note on the resolution, shown to the client too.
    resolution_note_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(PRIVATE_CONTENT, ACCOUNT_LIFETIME_RULE))
