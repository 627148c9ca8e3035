"""Aggregate tables of de-identified message counts.

``service_stats`` (one row per day, channel, direction and country, with counts) and
``service_stats_days`` (the days built) are the operator's own tables: no
``tenant_id``, no row-level policy (as ``breaches``), and nothing in them names an
account, a message or a person, so an account's purge leaves them.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "service_stats",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        _count("messages"), _count("segments"), _count("delivered"), _count("failed"),
        _count("subjects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_stats")),
    )
    op.create_index("ix_service_stats_day", "service_stats", ["day"])
    op.create_table(
        "service_stats_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("built_at", UTCDateTime(timezone=True), nullable=False),
        _count("buckets"),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_service_stats_days")),
    )


def downgrade() -> None:
    op.drop_table("service_stats_days")
    op.drop_index("ix_service_stats_day", table_name="service_stats")
    op.drop_table("service_stats")
