"""Termination: each terminated account's purge, due six months after, and its
deletion certificate.

``account_purges`` is the operator's record of a terminated client account: when it
was terminated, when its data must be gone (``purge_due_at``), whether the client asked
for it sooner, when it was purged, and the certificate issued then (JSON without
personal data). It outlives the account's data on purpose: it is the evidence.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "account_purges",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        _when("terminated_at"), _when("purge_due_at"), _when("requested_at", nullable=True),
        _when("purged_at", nullable=True),
        sa.Column("certificate_id", sa.String(length=40), nullable=True),
        sa.Column("certificate", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_account_purges_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_account_purges")),
    )
    op.create_index("ix_account_purges_purge_due_at", "account_purges", ["purge_due_at"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        op.execute("ALTER TABLE account_purges ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE account_purges FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON account_purges USING ({condition}) "
                   f"WITH CHECK ({condition})")


def downgrade() -> None:
    op.drop_table("account_purges")
