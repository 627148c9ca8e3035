"""Problems a carrier reports about a connector, not a message: connector_errors.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.storage.sqltypes

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_errors",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", tidings.storage.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_errors")),
    )
    op.create_index("ix_connector_errors_connector_id", "connector_errors",
                    ["connector", "id"])


def downgrade() -> None:
    op.drop_index("ix_connector_errors_connector_id", table_name="connector_errors")
    op.drop_table("connector_errors")
