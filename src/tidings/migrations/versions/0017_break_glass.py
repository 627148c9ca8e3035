"""An operator's time-boxed access to an account's message content: break_glass_grants.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def upgrade() -> None:
    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("reason_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_break_glass_grants_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grants")),
    )
    op.create_index(op.f("ix_break_glass_grants_tenant_id"), "break_glass_grants",
                    ["tenant_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        op.execute("ALTER TABLE break_glass_grants ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE break_glass_grants FORCE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_isolation ON break_glass_grants "
                   f"USING ({condition}) WITH CHECK ({condition})")


def downgrade() -> None:
    op.drop_index(op.f("ix_break_glass_grants_tenant_id"), table_name="break_glass_grants")
    op.drop_table("break_glass_grants")
