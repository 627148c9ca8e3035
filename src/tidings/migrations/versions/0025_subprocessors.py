"""The sub-processor register, its notices to clients and their objections.

``subprocessors`` is the operator's own table (no ``tenant_id``, no row-level policy,
as ``breaches``); ``subprocessor_notices`` names the client each notice went to and
gets the tenant policy. ``connectors.subprocessor_id`` names the company behind a
carrier, so that routing can wait for it to be in effect.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subprocessors",
        _text("id", 40, nullable=False), _text("legal_name", 200, nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        _text("purpose", 500, nullable=False),
        sa.Column("data_categories", sa.JSON(), nullable=False),
        _text("transfer_mechanism", 20, nullable=False),
        _text("security_summary", 2000, nullable=False),
        _text("lifecycle", 20, nullable=False), _when("created_at"),
        _text("created_by", 80, nullable=False), _when("notified_at", nullable=True),
        _when("effective_at", nullable=True), _when("retired_at", nullable=True),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subprocessors")),
    )
    op.create_table(
        "subprocessor_notices",
        _text("id", 40, nullable=False), _text("subprocessor_id", 40, nullable=False),
        _text("tenant_id", 40, nullable=False), _when("notified_at"), _when("effective_at"),
        sa.Column("mail_ids", sa.JSON(), nullable=False), _text("undeliverable", 40),
        _when("objected_at", nullable=True), _text("objected_by", 80),
        sa.Column("objection_reason_enc", sa.LargeBinary(), nullable=True),
        _when("staff_told_at", nullable=True),
        _text("resolution", 20), _when("resolved_at", nullable=True),
        _text("resolved_by", 80), _text("resolution_note", 1000),
        sa.ForeignKeyConstraint(["subprocessor_id"], ["subprocessors.id"],
                                name=op.f("fk_subprocessor_notices_subprocessor_id_subprocessors")),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_subprocessor_notices_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subprocessor_notices")),
        sa.UniqueConstraint("subprocessor_id", "tenant_id",
                            name="uq_subprocessor_notices_subprocessor_tenant"),
    )
    op.create_index("ix_subprocessor_notices_subprocessor_id", "subprocessor_notices",
                    ["subprocessor_id"])
    op.create_index("ix_subprocessor_notices_tenant_id", "subprocessor_notices",
                    ["tenant_id"])
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("subprocessor_id", sa.String(length=40), nullable=True))
        batch.create_foreign_key(op.f("fk_connectors_subprocessor_id_subprocessors"),
                                 "subprocessors", ["subprocessor_id"], ["id"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        op.execute("ALTER TABLE subprocessor_notices ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE subprocessor_notices FORCE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_isolation ON subprocessor_notices "
                   f"USING ({condition}) WITH CHECK ({condition})")


def downgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.drop_constraint(op.f("fk_connectors_subprocessor_id_subprocessors"),
                              type_="foreignkey")
        batch.drop_column("subprocessor_id")
    op.drop_index("ix_subprocessor_notices_tenant_id", table_name="subprocessor_notices")
    op.drop_index("ix_subprocessor_notices_subprocessor_id",
                  table_name="subprocessor_notices")
    op.drop_table("subprocessor_notices")
    op.drop_table("subprocessors")
