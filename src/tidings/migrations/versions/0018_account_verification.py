"""Sign-up and trials: account_verifications, verified_numbers, trial_usage.

Each table belongs to an account (``tenant_id``) and gets the cross-tenant policy of
migration 0013 on PostgreSQL.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLES = ("account_verifications", "verified_numbers", "trial_usage")
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _tenant(table: str) -> list[Any]:
    return [sa.Column("tenant_id", sa.String(length=40), nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                    name=op.f(f"fk_{table}_tenant_id_accounts"))]


def upgrade() -> None:
    op.create_table(
        "account_verifications",
        sa.Column("id", sa.String(length=40), nullable=False), *_tenant("account_verifications"),
        sa.Column("status", sa.String(length=20), nullable=False),
        _when("email_confirmed_at", nullable=True),
        sa.Column("legal_name", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("registration_number", sa.String(length=100), nullable=True),
        sa.Column("contact_name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("contact_email_enc", sa.LargeBinary(), nullable=True),
        sa.Column("contact_phone_enc", sa.LargeBinary(), nullable=True),
        sa.Column("intended_use_enc", sa.LargeBinary(), nullable=True),
        _when("submitted_at", nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("decision_note", sa.String(length=1000), nullable=True),
        sa.Column("decided_by", sa.String(length=60), nullable=True),
        _when("decided_at", nullable=True), _when("created_at"), _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_verifications")),
    )
    op.create_table(
        "verified_numbers",
        sa.Column("id", sa.String(length=40), nullable=False), *_tenant("verified_numbers"),
        sa.Column("number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("number_index", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("expires_at"), _when("verified_at", nullable=True), _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verified_numbers")),
    )
    op.create_table(
        "trial_usage", *_tenant("trial_usage"),
        sa.Column("messages_sent", sa.Integer(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_trial_usage")),
    )
    with op.batch_alter_table("account_verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_verifications_tenant_id"), ["tenant_id"],
                              unique=True)
    with op.batch_alter_table("verified_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verified_numbers_tenant_id"), ["tenant_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_verified_numbers_number_index"),
                              ["number_index"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) "
                       f"WITH CHECK ({condition})")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
