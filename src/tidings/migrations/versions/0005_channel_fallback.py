"""Channel fallback: the channels a message still may try, and after how long.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_channels", sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column("fallback_after", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("fallback_after")
        batch_op.drop_column("fallback_channels")
