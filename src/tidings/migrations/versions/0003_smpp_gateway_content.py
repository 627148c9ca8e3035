"""SMPP credentials of client accounts; per-message receipt target and rich content.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.storage.sqltypes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"


def upgrade() -> None:
    op.create_table(
        "smpp_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("system_id", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", tidings.storage.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", tidings.storage.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["accounts.id"], name=op.f("fk_smpp_credentials_tenant_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smpp_credentials")),
        sa.UniqueConstraint("system_id", name=op.f("uq_smpp_credentials_system_id")),
    )
    with op.batch_alter_table("smpp_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_smpp_credentials_tenant_id"), ["tenant_id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("smpp_receipt_to", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("content_enc", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR {ACTING} = {SYSTEM}"
        op.execute("ALTER TABLE smpp_credentials ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE smpp_credentials FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON smpp_credentials USING ({condition}) "
                   f"WITH CHECK ({condition})")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("content_enc")
        batch_op.drop_column("smpp_receipt_to")
    op.drop_table("smpp_credentials")
