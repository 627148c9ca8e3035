"""API keys get scopes, an optional expiry, an allow-list of client networks, and the
user who made them.

``scopes`` is a space-separated list of permissions; NULL, for keys made before
scopes existed, means every permission of the account (what those keys could do).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.String(length=600), nullable=True))
        batch_op.add_column(sa.Column("expires_at", UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("allowed_ips", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        for column in ("created_by", "allowed_ips", "expires_at", "scopes"):
            batch_op.drop_column(column)
