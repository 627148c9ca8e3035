"""message_events loses its index on tenant_id alone.

Every read of events goes by message (``uq_message_events_message_id_seq``), so
the index only cost a write per event: three events per message on the send path.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_message_events_tenant_id", table_name="message_events")


def downgrade() -> None:
    op.create_index("ix_message_events_tenant_id", "message_events", ["tenant_id"])
