"""Message retention: what is left of an anonymised message, each account's period and
its runs.

``messages`` gains ``anonymised_at`` (past the account's retention) and what remains of
the person there: ``subject_country`` and ``subject_number_type``. ``retention_policies``
holds an account's own period (NULL: the operator's default) and how far the daily job
has come; ``retention_runs`` a report per run. Both are a tenant's, under row-level
security.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TABLES = ("retention_policies", "retention_runs")
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _tenant(table: str) -> list[Any]:
    return [sa.Column("tenant_id", sa.String(length=40), nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                    name=op.f(f"fk_{table}_tenant_id_accounts"))]


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(_when("anonymised_at", nullable=True))
        batch.add_column(sa.Column("subject_country", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("subject_number_type", sa.String(length=30),
                                   nullable=True))
    op.create_table(
        "retention_policies", *_tenant("retention_policies"),
        sa.Column("message_body_days", sa.Integer(), nullable=True),
        sa.Column("anonymised_through", sa.String(length=40), nullable=False),
        _when("last_run_at", nullable=True), _when("updated_at"),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "retention_runs", sa.Column("id", sa.String(length=40), nullable=False),
        *_tenant("retention_runs"), _when("started_at"), _when("cutoff"),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("keys_destroyed", sa.Integer(), nullable=False), _when("finished_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_runs")),
    )
    op.create_index("ix_retention_runs_tenant_id_started_at", "retention_runs",
                    ["tenant_id", "started_at"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) "
                       f"WITH CHECK ({condition})")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("subject_number_type")
        batch.drop_column("subject_country")
        batch.drop_column("anonymised_at")
