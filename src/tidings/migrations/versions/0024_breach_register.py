"""The breach register: breaches, their versions, the notices to clients.

``breaches`` and ``breach_versions`` are the operator's own tables (no ``tenant_id``,
no row-level policy, as ``operator_keys``); ``breach_notices`` names the client each
notice went to and gets the tenant policy. On PostgreSQL the runtime roles may not
delete a breach nor change or delete a version: the register only grows.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 12:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

RUNTIME_ROLE = "tidings_runtime"
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _breach_ref(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["breach_id"], ["breaches.id"],
                                   name=op.f(f"fk_{table}_breach_id_breaches"))


def upgrade() -> None:
    op.create_table(
        "breaches",
        _text("id", 40, nullable=False), _text("status", 20, nullable=False),
        _when("detected_at"), _when("aware_at"), _when("created_at"),
        _text("created_by", 80, nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        _when("escalated_at", nullable=True), _when("overdue_at", nullable=True),
        _when("notified_at", nullable=True),
        sa.Column("notified_version", sa.Integer(), nullable=True),
        _when("closed_at", nullable=True), _text("closed_by", 80),
        _text("close_reason", 500), _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaches")),
    )
    op.create_index("ix_breaches_status_aware_at", "breaches", ["status", "aware_at"])
    op.create_table(
        "breach_versions",
        _text("breach_id", 40, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _text("nature", 20), _text("nature_description", 2000),
        sa.Column("categories_of_subjects", sa.JSON(), nullable=False),
        _text("approx_subjects", 40), _text("approx_subjects_reason", 500),
        sa.Column("categories_of_records", sa.JSON(), nullable=False),
        _text("approx_records", 40), _text("likely_consequences", 2000),
        _text("measures_taken", 2000), _text("contact", 500),
        sa.Column("scope_tenants", sa.JSON(), nullable=False),
        _when("scope_window_start", nullable=True), _when("scope_window_end", nullable=True),
        sa.Column("scope_categories", sa.JSON(), nullable=False),
        _text("created_by", 80, nullable=False), _when("created_at"),
        _breach_ref("breach_versions"),
        sa.PrimaryKeyConstraint("breach_id", "version", name=op.f("pk_breach_versions")),
    )
    op.create_table(
        "breach_notices",
        _text("id", 40, nullable=False), _text("breach_id", 40, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _text("tenant_id", 40, nullable=False),
        sa.Column("accounts", sa.JSON(), nullable=False),
        _text("mail_id", 40), sa.Column("mail_ids", sa.JSON(), nullable=False),
        _text("undeliverable", 40),
        sa.Column("subjects", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        _when("queued_at"), _text("created_by", 80, nullable=False),
        _breach_ref("breach_notices"),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_breach_notices_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_notices")),
    )
    op.create_index("ix_breach_notices_breach_id", "breach_notices", ["breach_id"])
    op.create_index("ix_breach_notices_tenant_id", "breach_notices", ["tenant_id"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        op.execute("ALTER TABLE breach_notices ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE breach_notices FORCE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_isolation ON breach_notices "
                   f"USING ({condition}) WITH CHECK ({condition})")
        # Every breach is kept, notified or not, and a version is never rewritten.
        op.execute(f"REVOKE DELETE ON breaches FROM {RUNTIME_ROLE}")
        op.execute(f"REVOKE UPDATE, DELETE ON breach_versions FROM {RUNTIME_ROLE}")


def downgrade() -> None:
    op.drop_table("breach_notices")
    op.drop_table("breach_versions")
    op.drop_index("ix_breaches_status_aware_at", table_name="breaches")
    op.drop_table("breaches")
