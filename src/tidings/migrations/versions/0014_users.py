"""People who log in: users, user_sessions, password_history, recovery_codes.

Each table has a ``tenant_id`` that may be NULL: the operator's staff belong to no
account, and under row-level security only the cross-tenant role sees their rows.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 08:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("users", "password_history", "recovery_codes", "user_sessions")
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"


def _owned(table: str) -> list[Any]:
    """The id, the owning account and, but for users, the user of a row."""
    columns: list[Any] = [
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f(f"fk_{table}_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]
    if table != "users":
        columns += [sa.Column("user_id", sa.String(length=40), nullable=False),
                    sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                            name=op.f(f"fk_{table}_user_id_users"))]
    return columns


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users", *_owned("users"),
        sa.Column("email_enc", sa.LargeBinary(), nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        _when("password_temporary_until", nullable=True),
        _when("password_changed_at"),
        sa.Column("mfa_secret_enc", sa.LargeBinary(), nullable=True),
        _when("mfa_enabled_at", nullable=True),
        sa.Column("mfa_last_step", sa.Integer(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _when("locked_until", nullable=True),
        _when("created_at"), _when("updated_at"),
        sa.UniqueConstraint("email_index", name=op.f("uq_users_email_index")),
    )
    op.create_table(
        "password_history", *_owned("password_history"),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "recovery_codes", *_owned("recovery_codes"),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "user_sessions", *_owned("user_sessions"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _when("created_at"), _when("expires_at"), _when("last_seen_at"),
        _when("ended_at", nullable=True),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant_id"), ["tenant_id"],
                                  unique=False)
            if table != "users":
                batch_op.create_index(batch_op.f(f"ix_{table}_user_id"), ["user_id"],
                                      unique=False)
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
