"""Messages, their event history and idempotency keys.

``to``, ``from`` and ``body`` are personal data: only their ciphertexts (and a
blind index for exact look-up) are stored; see ``tidings.storage.vault``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text, true
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import (
    CONTACT,
    DETERMINISTIC_ID,
    IDEMPOTENCY_RULE,
    MESSAGE_ADDRESS_RULE,
    MESSAGE_BODY_RULE,
    MESSAGE_CONTENT,
    MESSAGE_TOKEN_RULE,
    PSEUDONYMOUS_ID,
    operational,
    personal,
)
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

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    direction: Mapped[str] = mapped_column(String(10), info=operational())
    channel: Mapped[str] = mapped_column(String(20), info=operational())
    status: Mapped[str] = mapped_column(String(20), info=operational())
    # A number or an e-mail address, by channel (CONTACT is their common category).
    to_enc: Mapped[bytes] = mapped_column(Ciphertext, info=personal(CONTACT, MESSAGE_ADDRESS_RULE))
    to_index: Mapped[str] = mapped_column(String(64),
                                          info=personal(DETERMINISTIC_ID, MESSAGE_TOKEN_RULE))
    from_enc: Mapped[bytes] = mapped_column(Ciphertext,
                                            info=personal(CONTACT, MESSAGE_ADDRESS_RULE))
    body_enc: Mapped[bytes] = mapped_column(Ciphertext,
                                            info=personal(MESSAGE_CONTENT, MESSAGE_BODY_RULE))
    encoding: Mapped[str] = mapped_column(String(10), info=operational())
    num_segments: Mapped[int] = mapped_column(Integer)
    status_callback: Mapped[str | None] = mapped_column(String(2048),  # the client's URL
                                                        info=operational())
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connector: Mapped[str | None] = mapped_column(String(60), info=operational())
    carrier_message_id: Mapped[str | None] = mapped_column(String(100), info=operational())
    error_code: Mapped[str | None] = mapped_column(String(60), info=operational())
    # the SMPP credential whose binds get this message's receipt (submitted over SMPP)
    smpp_receipt_to: Mapped[str | None] = mapped_column(String(40), info=operational())
    # email subject and HTML, WhatsApp template or media: vault-encrypted JSON
    content_enc: Mapped[bytes | None] = mapped_column(
        Ciphertext, info=personal(MESSAGE_CONTENT, MESSAGE_BODY_RULE))
    # The data subject's key (the recipient's, or the sender's of an inbound message) in
    # the key store: to, from, body and content are under it. NULL: stored before
    # subject keys, under the tenant's data key. A random id, but one that stands for
    # the person: it goes with the address when the message is anonymised.
    subject_key: Mapped[str | None] = mapped_column(
        String(40), info=personal(PSEUDONYMOUS_ID, MESSAGE_TOKEN_RULE))
    # An inbound message's sender's blind index (its data subject's; an outbound
    # message's subject is its recipient, ``to_index``). NULL on outbound messages.
    from_index: Mapped[str | None] = mapped_column(
        String(64), info=personal(DETERMINISTIC_ID, MESSAGE_TOKEN_RULE))
    fallback_channels: Mapped[str | None] = mapped_column(String(60),  # still to try, in order
                                                          info=operational())
    fallback_after: Mapped[int | None] = mapped_column(Integer)  # seconds sent, undelivered
    event_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Past the account's retention (privacy/retention.py): what is left of the person is
    # their number's country and type, and the message's day.
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subject_country: Mapped[str | None] = mapped_column(String(2), info=operational())
    subject_number_type: Mapped[str | None] = mapped_column(String(30), info=operational())


class MessageEvent(Base):
    """Every status report, applied or not: the lifecycle is forward-only, history is not."""

    __tablename__ = "message_events"
    __table_args__ = (UniqueConstraint("message_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No index of its own: every read of events goes by message (the unique index
    # below), and each event written would pay for one more index entry.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), info=operational())
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), info=operational())
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), info=operational())
    applied: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(30), info=operational())
    error_code: Mapped[str | None] = mapped_column(String(60), info=operational())
    connector: Mapped[str | None] = mapped_column(String(60),  # the attempt's connector
                                                  info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """A request answered under an ``Idempotency-Key``; see ``messaging.idempotency``."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                           info=operational())
    # The client's own key for the request, an opaque token (a UUID, as a rule).
    key: Mapped[str] = mapped_column(String(255), primary_key=True, info=operational())
    # HMAC under the tenant's index key, never a plain hash of the request (which holds
    # the recipient's number): a blind index of the request.
    request_hash: Mapped[str] = mapped_column(String(64),
                                              info=personal(DETERMINISTIC_ID, IDEMPOTENCY_RULE))
    # False only for records stored before fingerprints were keyed, until start-up keys them.
    keyed: Mapped[bool] = mapped_column(Boolean, server_default=true())
    message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id"),  # a single send
                                                   info=operational())
    response_enc: Mapped[bytes | None] = mapped_column(Ciphertext,  # a batch's answer
                                                       info=personal(CONTACT, IDEMPOTENCY_RULE))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # pruned by it
