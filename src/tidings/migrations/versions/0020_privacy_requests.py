"""Data subject requests, their bundles, legal holds and restrictions.

``privacy_requests`` holds each request with its deadline, the person under the
account's data key and their blind index (both emptied once the person is erased), and
an outcome without personal data. ``privacy_bundles`` keeps an access or portability
bundle, encrypted, until it expires. ``legal_holds`` and ``subject_restrictions`` are
keyed by the person's blind index. Each table is a tenant's, under row-level security.
``audit_events.action`` grows to 40 characters for ``dsr.<type>.fulfilled`` (SQLite
does not hold a string to its declared length; PostgreSQL does). The index of
``messages.subject_key`` leaves out the NULLs of messages from before subject keys; ``idempotency_keys.created_at`` is
indexed for the records' pruning after 24 hours.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TABLES = ("privacy_requests", "privacy_bundles", "legal_holds", "subject_restrictions")
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _id_and_tenant(table: str) -> list[Any]:
    return [sa.Column("id", sa.String(length=40), nullable=False),
            sa.Column("tenant_id", sa.String(length=40), nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                    name=op.f(f"fk_{table}_tenant_id_accounts")),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))]


def _request_ref(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["request_id"], ["privacy_requests.id"],
                                   name=op.f(f"fk_{table}_request_id_privacy_requests"))


def upgrade() -> None:
    op.create_table(
        "privacy_requests", *_id_and_tenant("privacy_requests"),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subject_kind", sa.String(length=10), nullable=False),
        sa.Column("subject_enc", sa.LargeBinary(), nullable=True),
        sa.Column("subject_index", sa.String(length=64), nullable=True),
        sa.Column("note_enc", sa.LargeBinary(), nullable=True),
        sa.Column("rectify_enc", sa.LargeBinary(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        _when("received_at"), _when("due_at"), _when("extended_at", nullable=True),
        sa.Column("extension_reason", sa.String(length=500), nullable=True),
        _when("alerted_at", nullable=True), _when("completed_at", nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        _when("updated_at"),
    )
    op.create_table(
        "privacy_bundles", *_id_and_tenant("privacy_bundles"),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("content_enc", sa.LargeBinary(), nullable=False),
        _when("created_at"), _when("expires_at"), _request_ref("privacy_bundles"),
        sa.UniqueConstraint("request_id", name=op.f("uq_privacy_bundles_request_id")),
    )
    op.create_table(
        "legal_holds", *_id_and_tenant("legal_holds"),
        sa.Column("subject_index", sa.String(length=64), nullable=True),
        sa.Column("basis", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        _when("created_at"), _when("released_at", nullable=True),
        sa.Column("released_by", sa.String(length=80), nullable=True),
    )
    op.create_table(
        "subject_restrictions", *_id_and_tenant("subject_restrictions"),
        sa.Column("subject_index", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        _when("created_at"), _when("lifted_at", nullable=True),
        sa.Column("lifted_by", sa.String(length=80), nullable=True),
        _request_ref("subject_restrictions"),
    )
    _indexes()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_events ALTER COLUMN action TYPE varchar(40)")
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) "
                       f"WITH CHECK ({condition})")


def _indexes() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    # Only messages with a subject key in the index: see the model.
    op.drop_index("ix_messages_tenant_id_subject_key", table_name="messages")
    op.create_index("ix_messages_tenant_id_subject_key", "messages",
                    ["tenant_id", "subject_key"], unique=False,
                    sqlite_where=sa.text("subject_key IS NOT NULL"),
                    postgresql_where=sa.text("subject_key IS NOT NULL"))
    op.create_index("ix_privacy_requests_tenant_id", "privacy_requests", ["tenant_id"])
    op.create_index("ix_privacy_requests_tenant_id_received_at", "privacy_requests",
                    ["tenant_id", "received_at"])
    op.create_index("ix_privacy_requests_tenant_id_subject_index", "privacy_requests",
                    ["tenant_id", "subject_index"])
    op.create_index("ix_privacy_requests_status_due_at", "privacy_requests",
                    ["status", "due_at"])
    op.create_index("ix_privacy_bundles_tenant_id", "privacy_bundles", ["tenant_id"])
    op.create_index("ix_privacy_bundles_expires_at", "privacy_bundles", ["expires_at"])
    op.create_index("ix_legal_holds_tenant_id", "legal_holds", ["tenant_id"])
    op.create_index("ix_legal_holds_tenant_id_subject_index", "legal_holds",
                    ["tenant_id", "subject_index"])
    op.create_index("ix_subject_restrictions_tenant_id", "subject_restrictions",
                    ["tenant_id"])
    op.create_index("ix_subject_restrictions_tenant_id_subject_index",
                    "subject_restrictions", ["tenant_id", "subject_index"])


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_index("ix_messages_tenant_id_subject_key", table_name="messages")
    op.create_index("ix_messages_tenant_id_subject_key", "messages",
                    ["tenant_id", "subject_key"], unique=False)
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    # audit_events.action stays 40 wide: narrowing it would cut chained events' actions.
