"""The sub-processor register and the notices it sends clients.

The platform (the processor) engages other companies to process its clients' personal
data: a carrier that carries their SMS, a mail relay, WhatsApp's Cloud API. The DPA
lets a client (the controller) object to a new one within thirty days of being told
(SUB-1, SUB-2). ``subprocessors`` is the operator's own table (no ``tenant_id``, no
row-level policy, as ``breaches``); ``subprocessor_notices`` holds the notice to each
client and its objection, under the tenant policy. A connector names the sub-processor
behind it (``connectors.subprocessor_id``), and routing asks ``gates.py`` whether it may
carry a message of an account yet.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    ACCOUNT_LIFETIME_RULE,
    PRIVATE_CONTENT,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class Lifecycle(StrEnum):
    """What the operator decided; the status shown also follows the clock (``status``)."""

    PROPOSED = "proposed"  # in the register, nobody told: nothing may use it
    NOTIFIED = "notified"  # clients told; in use from ``effective_at``
    RETIRED = "retired"  # no longer used: nothing may use it


class Status(StrEnum):
    """SUB-1's states, as the register shows them at an instant."""

    PROPOSED = "proposed"
    NOTIFIED = "notified"  # the notice period runs, nobody has objected
    OBJECTED = "objected"  # the notice period runs, and a client objected
    ACTIVE = "active"  # in use (except for the clients kept off it)
    RETIRED = "retired"


class Transfer(StrEnum):
    """How personal data may lawfully go where the sub-processor is (GDPR Chapter V)."""

    NONE = "none"  # it stays where the platform is: no transfer
    ADEQUACY = "adequacy"  # an adequacy decision (Art. 45)
    SCCS = "sccs"  # standard contractual clauses (Art. 46(2)(c))
    BCRS = "bcrs"  # binding corporate rules (Art. 47)
    DEROGATION = "derogation"  # a derogation for a specific situation (Art. 49)


class Resolution(StrEnum):
    """How the operator closed an objection."""

    UPHELD = "upheld"  # the client stays off the sub-processor
    WITHDRAWN = "withdrawn"  # the client withdrew it: the sub-processor applies
    TERMINATING = "terminating"  # the client ends the service instead: stays off


class Subprocessor(Base):
    """One entry of the register: a company, what it does with which data, and where."""

    __tablename__ = "subprocessors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    legal_name: Mapped[str] = mapped_column(String(200), info=operational())
    countries: Mapped[list[str]] = mapped_column(JSON, info=operational())  # ISO alpha-2
    purpose: Mapped[str] = mapped_column(String(500), info=operational())
    # The personal data it processes: fideslang keys of core/data_categories.py (user.*).
    data_categories: Mapped[list[str]] = mapped_column(JSON, info=operational())
    transfer_mechanism: Mapped[str] = mapped_column(String(20), info=operational())
    security_summary: Mapped[str] = mapped_column(String(2000), info=operational())
    lifecycle: Mapped[str] = mapped_column(String(20), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(80), info=operational())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # At least thirty days after ``notified_at`` (SUB-2); routing waits for it.
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SubprocessorNotice(Base):
    """The notice of one sub-processor to one client, and the client's objection.

    ``effective_at`` is this client's: the register's, or thirty days after this notice
    went out if it went out later (a client told late gets its full thirty days)."""

    __tablename__ = "subprocessor_notices"
    __table_args__ = (UniqueConstraint("subprocessor_id", "tenant_id",
                                       name="uq_subprocessor_notices_subprocessor_tenant"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    subprocessor_id: Mapped[str] = mapped_column(ForeignKey("subprocessors.id"), index=True,
                                                 info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The owners' mails (the proof the notice went out); empty with ``undeliverable``
    # when the client has no active owner to write to.
    mail_ids: Mapped[list[str]] = mapped_column(JSON, info=operational())
    undeliverable: Mapped[str | None] = mapped_column(String(40), info=operational())
    objected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    objected_by: Mapped[str | None] = mapped_column(String(80), info=operational())
    # The client's grounds, in its words (they may name someone): under its keys.
    objection_reason_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=personal(PRIVATE_CONTENT, ACCOUNT_LIFETIME_RULE))
    staff_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the resolution opened
    resolution: Mapped[str | None] = mapped_column(String(20), info=operational())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(80), info=operational())
    resolution_note: Mapped[str | None] = mapped_column(String(1000), info=operational())
