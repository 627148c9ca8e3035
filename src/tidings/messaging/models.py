"""Messages, their event history and idempotency keys.

``to``, ``from`` and ``body`` are personal data: only their ciphertexts (and a
blind index for exact look-up) are stored; see ``tidings.storage.vault``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text, true
from sqlalchemy.orm import Mapped, mapped_column

from tidings.storage.db import Base, BigIntPK
from tidings.storage.sqltypes import Ciphertext, UTCDateTime


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_tenant_id_id", "tenant_id", "id"),
        Index("ix_messages_tenant_id_to_index", "tenant_id", "to_index"),
        Index("ix_messages_connector_carrier_message_id", "connector", "carrier_message_id"),
        # Messages from before subject keys (NULL) are left out: with millions of them,
        # SQLite's statistics made the planner scan the table instead of using the
        # index for an erasure's ``subject_key IN (…)`` (238 ms against 0.04 ms on 1M).
        Index("ix_messages_tenant_id_subject_key", "tenant_id", "subject_key",
              sqlite_where=text("subject_key IS NOT NULL"),
              postgresql_where=text("subject_key IS NOT NULL")),
        # Inbound messages only: an outbound message costs no entry here.
        Index("ix_messages_tenant_id_from_index", "tenant_id", "from_index",
              sqlite_where=text("from_index IS NOT NULL"),
              postgresql_where=text("from_index IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    direction: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    to_enc: Mapped[bytes] = mapped_column(Ciphertext)
    to_index: Mapped[str] = mapped_column(String(64))
    from_enc: Mapped[bytes] = mapped_column(Ciphertext)
    body_enc: Mapped[bytes] = mapped_column(Ciphertext)
    encoding: Mapped[str] = mapped_column(String(10))
    num_segments: Mapped[int] = mapped_column(Integer)
    status_callback: Mapped[str | None] = mapped_column(String(2048))
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connector: Mapped[str | None] = mapped_column(String(60))
    carrier_message_id: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(60))
    # the SMPP credential whose binds get this message's receipt (submitted over SMPP)
    smpp_receipt_to: Mapped[str | None] = mapped_column(String(40))
    # email subject and HTML, WhatsApp template or media: vault-encrypted JSON
    content_enc: Mapped[bytes | None] = mapped_column(Ciphertext)
    # The data subject's key (the recipient's, or the sender's of an inbound message) in
    # the key store: to, from, body and content are under it. NULL: stored before
    # subject keys, under the tenant's data key.
    subject_key: Mapped[str | None] = mapped_column(String(40))
    # An inbound message's sender's blind index (its data subject's; an outbound
    # message's subject is its recipient, ``to_index``). NULL on outbound messages.
    from_index: Mapped[str | None] = mapped_column(String(64))
    fallback_channels: Mapped[str | None] = mapped_column(String(60))  # still to try, in order
    fallback_after: Mapped[int | None] = mapped_column(Integer)  # seconds sent, undelivered
    event_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageEvent(Base):
    """Every status report, applied or not: the lifecycle is forward-only, history is not."""

    __tablename__ = "message_events"
    __table_args__ = (UniqueConstraint("message_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No index of its own: every read of events goes by message (the unique index
    # below), and each event written would pay for one more index entry.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    applied: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(30))
    error_code: Mapped[str | None] = mapped_column(String(60))
    connector: Mapped[str | None] = mapped_column(String(60))  # the attempt's connector
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """A request answered under an ``Idempotency-Key``; see ``messaging.idempotency``."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # HMAC under the tenant's index key, never a plain hash of the request.
    request_hash: Mapped[str] = mapped_column(String(64))
    # False only for records stored before fingerprints were keyed, until start-up keys them.
    keyed: Mapped[bool] = mapped_column(Boolean, server_default=true())
    message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id"))  # a single send
    response_enc: Mapped[bytes | None] = mapped_column(Ciphertext)  # a batch's answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # pruned by it
