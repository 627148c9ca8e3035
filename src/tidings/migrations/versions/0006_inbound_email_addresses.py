"""Accounts own email addresses too (for inbound mail): phone_numbers.number grows to 254.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.alter_column("number", existing_type=sa.String(length=32),
                              type_=sa.String(length=254), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.alter_column("number", existing_type=sa.String(length=254),
                              type_=sa.String(length=32), existing_nullable=False)
