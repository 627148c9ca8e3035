"""Policy versions the operator publishes, their notices to clients and objections.

``policy_versions`` is the operator's own table (no ``tenant_id``, no row-level policy,
as ``breaches``): each version whole, with its text's hash, appended and never changed;
on PostgreSQL the runtime roles may neither update nor delete one. ``policy_notices``
names the account each notice went to, with its answer, and gets the tenant policy.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0026"
down_revision = "0025"
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


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        _text("id", 40, nullable=False), _text("kind", 20, nullable=False),
        _text("version", 40, nullable=False), _text("title", 200, nullable=False),
        _text("summary", 4000, nullable=False), sa.Column("text", sa.Text(), nullable=False),
        _text("sha256", 64, nullable=False), _when("published_at"),
        _text("published_by", 80, nullable=False), _when("objection_deadline"),
        _when("effective_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("kind", "version", name=op.f("uq_policy_versions_kind_version")),
    )
    op.create_index("ix_policy_versions_kind_effective_at", "policy_versions",
                    ["kind", "effective_at"])
    op.create_table(
        "policy_notices",
        _text("id", 40, nullable=False), _text("version_id", 40, nullable=False),
        _text("tenant_id", 40, nullable=False),
        sa.Column("mail_ids", sa.JSON(), nullable=False), _text("undeliverable", 40),
        _when("notified_at"), _text("notified_by", 80, nullable=False),
        _text("answer", 20), _when("answered_at", nullable=True), _text("answered_by", 80),
        sa.Column("objection_reason_enc", sa.LargeBinary(), nullable=True),
        _text("resolution", 20), _when("resolved_at", nullable=True),
        _text("resolved_by", 80),
        sa.Column("resolution_note_enc", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["version_id"], ["policy_versions.id"],
                                name=op.f("fk_policy_notices_version_id_policy_versions")),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_policy_notices_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_notices")),
        sa.UniqueConstraint("version_id", "tenant_id",
                            name=op.f("uq_policy_notices_version_id_tenant_id")),
    )
    op.create_index("ix_policy_notices_version_id", "policy_notices", ["version_id"])
    op.create_index("ix_policy_notices_tenant_id", "policy_notices", ["tenant_id"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        op.execute("ALTER TABLE policy_notices ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE policy_notices FORCE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_isolation ON policy_notices "
                   f"USING ({condition}) WITH CHECK ({condition})")
        # A published version is what clients were told: it is never rewritten.
        op.execute(f"REVOKE UPDATE, DELETE ON policy_versions FROM {RUNTIME_ROLE}")


def downgrade() -> None:
    op.drop_table("policy_notices")
    op.drop_index("ix_policy_versions_kind_effective_at", table_name="policy_versions")
    op.drop_table("policy_versions")
