"""Idempotency records: keyed fingerprints, and batch sends' answers.

* ``keyed``: whether ``request_hash`` is the HMAC under the tenant's index key.
  Records stored before are plain SHA-256 of the request (a phone number is a
  few hundred guesses away from one); they are marked ``false`` here and keyed
  at the next start (``messaging.idempotency.key_legacy_fingerprints``), where the
  tenants' keys are at hand.
* ``response_enc``: a batch send's answer, vault-encrypted, replayed as it was;
  ``message_id`` is empty for those records.

Stepping down deletes the records the older code cannot read (keyed or batch):
their keys then make new messages again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyed", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column("response_enc", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("message_id", existing_type=sa.String(length=40),
                              nullable=True)
    op.execute(sa.text("UPDATE idempotency_keys SET keyed = false"))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM idempotency_keys WHERE keyed OR message_id IS NULL"))
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.alter_column("message_id", existing_type=sa.String(length=40),
                              nullable=False)
        batch_op.drop_column("response_enc")
        batch_op.drop_column("keyed")
