"""Drop three indexes that no query uses; each cost a write per row on the send path.

* ``ix_message_events_tenant_id``: events are read by message
  (``uq_message_events_message_id_seq``); three events per message.
* ``ix_webhook_deliveries_event_id``: the event id goes out with the POST and is
  never looked up.
* ``ix_webhook_attempts_tenant_id``: attempts are read by delivery.

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

DROPPED = (
    ("ix_message_events_tenant_id", "message_events", ["tenant_id"]),
    ("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"]),
    ("ix_webhook_attempts_tenant_id", "webhook_attempts", ["tenant_id"]),
)


def upgrade() -> None:
    for name, table, _ in DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in DROPPED:
        op.create_index(name, table, columns)
