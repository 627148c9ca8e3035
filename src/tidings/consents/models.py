"""What the consents domain keeps: one table of events, appended and never changed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    CONSENT_EVIDENCE_RULE,
    CONSENT_RECORD_RULE,
    DETERMINISTIC_ID,
    IP_ADDRESS,
    PRIVATE_CONTENT,
    PSEUDONYMOUS_ID,
    operational,
    personal,
)
from tidings.storage.db import Base
from tidings.storage.sqltypes import Ciphertext, UTCDateTime

__all__ = ["EVIDENCE_FIELD", "IP_PREFIX_FIELD", "ConsentEvent"]

# The ciphertexts are bound to these names (and to the person's key): they decrypt
# under no other column.
EVIDENCE_FIELD = "consent_events.evidence_ref"
IP_PREFIX_FIELD = "consent_events.ip_prefix"


class ConsentEvent(Base):
    """One thing that happened to a person's consent on a channel for a purpose: given
    (``opt_in``, ``soft_opt_in``) or withdrawn (``opt_out``). Never updated; deleted only
    when the person is erased or the account purged (on PostgreSQL a trigger refuses both
    to the app role; the system role does them, migration 0028); the state in force is the
    latest event.
    """

    __tablename__ = "consent_events"
    __table_args__ = (
        # A person's history (and, by its first column, the account's events, which the
        # send path's cache and a purge read); ``id`` orders a person's events cheaply.
        Index("ix_consent_events_tenant_id_subject_index_id", "tenant_id", "subject_index",
              "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    # The person's blind index: the ``to_index`` of the messages sent to them, so the
    # send path can match a message to its consent without another HMAC.
    subject_index: Mapped[str] = mapped_column(
        String(64), info=personal(DETERMINISTIC_ID, CONSENT_RECORD_RULE))
    # The person's key the evidence and IP prefix are under; NULL on an ``erased``
    # event, which has nothing of theirs to encrypt.
    subject_key: Mapped[str | None] = mapped_column(
        String(40), info=personal(PSEUDONYMOUS_ID, CONSENT_RECORD_RULE))
    channel: Mapped[str] = mapped_column(String(20), info=operational())
    purpose: Mapped[str] = mapped_column(String(20), info=operational())
    mechanism: Mapped[str] = mapped_column(String(20), info=operational())
    source: Mapped[str] = mapped_column(String(20), info=operational())
    # Where the proof is (a form submission's id, a keyword message's id, a signed
    # document's reference): it may name the person, so it is theirs, under their key.
    evidence_ref_enc: Mapped[bytes | None] = mapped_column(
        Ciphertext, info=personal(PRIVATE_CONTENT, CONSENT_EVIDENCE_RULE))
    text_sha256: Mapped[str | None] = mapped_column(String(64), info=operational())
    text_version: Mapped[str | None] = mapped_column(String(40), info=operational())
    # Only the network the person's address was in (/24 or /48), never the address.
    ip_prefix_enc: Mapped[bytes | None] = mapped_column(
        Ciphertext, info=personal(IP_ADDRESS, CONSENT_EVIDENCE_RULE))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    captured_by: Mapped[str] = mapped_column(String(80), info=operational())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
