"""WhatsApp customer-service windows (customer number as a blind index).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.storage.sqltypes

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"


def upgrade() -> None:
    op.create_table(
        "whatsapp_windows",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_index", sa.String(length=64), nullable=False),
        sa.Column("last_inbound_at", tidings.storage.sqltypes.UTCDateTime(timezone=True),
                  nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["accounts.id"], name=op.f("fk_whatsapp_windows_tenant_id_accounts")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_index", name=op.f("pk_whatsapp_windows")),
    )
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR {ACTING} = {SYSTEM}"
        op.execute("ALTER TABLE whatsapp_windows ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE whatsapp_windows FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON whatsapp_windows USING ({condition}) "
                   f"WITH CHECK ({condition})")


def downgrade() -> None:
    op.drop_table("whatsapp_windows")
