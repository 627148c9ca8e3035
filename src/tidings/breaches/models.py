"""The breach register: the platform's (the operator's) own tables.

The platform is the processor: it must tell each client it serves (the controller)
of a personal data breach within 48 hours of becoming aware of it (the DPA; GDPR
Art. 33(2)). ``breaches`` holds each breach and its clock, ``breach_versions`` what was
known of it, one row per update (appended, never changed), and ``breach_notices`` the
mail sent to each affected client, with the platform mail's id as proof.

``breaches`` and ``breach_versions`` are the operator's, not a tenant's: they have no
``tenant_id`` and no row-level policy, as ``operator_keys``. A notice names the client
it went to and is under the tenant policy. The register holds no personal data of the
people a breach concerns: it describes them (categories, counts), never quotes them;
its contact is the operator's data protection contact point.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import operational
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class BreachStatus(StrEnum):
    OPEN = "open"  # recorded, clients not told yet: the clock runs
    NOTIFIED = "notified"  # every affected client told (again after an update, if need be)
    CLOSED = "closed"  # handled; kept, like every breach


class Nature(StrEnum):
    """What the breach broke (the three security properties of GDPR Art. 32(1)(b))."""

    CONFIDENTIALITY = "confidentiality"  # disclosed or accessed without authority
    INTEGRITY = "integrity"  # altered without authority
    AVAILABILITY = "availability"  # lost or destroyed, or out of reach


class Breach(Base):
    """A personal data breach and its 48-hour clock, which runs from ``aware_at``."""

    __tablename__ = "breaches"
    __table_args__ = (
        # The clock's chore: open breaches by awareness.
        Index("ix_breaches_status_aware_at", "status", "aware_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    status: Mapped[str] = mapped_column(String(20), info=operational())
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was first seen
    # When the operator became aware that personal data was breached: the clock's start.
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(80), info=operational())
    current_version: Mapped[int] = mapped_column(Integer)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # staff mailed at 36 h
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # paged at 48 h
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the first notice
    notified_version: Mapped[int | None] = mapped_column(Integer)  # the latest notified
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(80), info=operational())
    close_reason: Mapped[str | None] = mapped_column(String(500), info=operational())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BreachVersion(Base):
    """What was known of a breach at one time: every field the DPA's notice holds, and
    the scope its impact is estimated from. Appended by each update, never changed."""

    __tablename__ = "breach_versions"

    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), primary_key=True,
                                           info=operational())
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    nature: Mapped[str | None] = mapped_column(String(20), info=operational())
    # The operator's description of what happened, in words that quote no one.
    nature_description: Mapped[str | None] = mapped_column(String(2000), info=operational())
    categories_of_subjects: Mapped[list[str]] = mapped_column(JSON, info=operational())
    # A number ("250"), a range ("100-500") or "unknown" (then with a reason).
    approx_subjects: Mapped[str | None] = mapped_column(String(40), info=operational())
    approx_subjects_reason: Mapped[str | None] = mapped_column(String(500),
                                                               info=operational())
    # Data categories: fideslang keys of core/data_categories.py (user.*).
    categories_of_records: Mapped[list[str]] = mapped_column(JSON, info=operational())
    approx_records: Mapped[str | None] = mapped_column(String(40), info=operational())
    likely_consequences: Mapped[str | None] = mapped_column(String(2000), info=operational())
    measures_taken: Mapped[str | None] = mapped_column(String(2000), info=operational())
    # The operator's data protection contact point: a function, not a data subject.
    contact: Mapped[str | None] = mapped_column(String(500), info=operational())
    # The scope: the accounts (with the accounts below them), the time window (start
    # included, end not) and the data categories the breach reached.
    scope_tenants: Mapped[list[str]] = mapped_column(JSON, info=operational())
    scope_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope_window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope_categories: Mapped[list[str]] = mapped_column(JSON, info=operational())
    created_by: Mapped[str] = mapped_column(String(80), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BreachNotice(Base):
    """The notice of one version of a breach to one affected client (the controller),
    mailed to its owners: the platform mail's id is the proof it was sent."""

    __tablename__ = "breach_notices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), index=True,
                                           info=operational())
    version: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    # The accounts of this client the scope named or reached (itself, sub-accounts).
    accounts: Mapped[list[str]] = mapped_column(JSON, info=operational())
    # The first owner's mail, and every owner's (one mail each); NULL and empty with
    # ``undeliverable`` when the client has no active owner to write to.
    mail_id: Mapped[str | None] = mapped_column(String(40), info=operational())
    mail_ids: Mapped[list[str]] = mapped_column(JSON, info=operational())
    undeliverable: Mapped[str | None] = mapped_column(String(40), info=operational())
    # The impact the notice stated for the client's accounts (impact.py's estimate).
    subjects: Mapped[int] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(Integer)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(80), info=operational())
