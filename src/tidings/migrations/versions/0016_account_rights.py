"""Sub-account rights, the monthly message counters that enforce a cap, and why and by
whom an account was suspended.

``account_rights``: one row per sub-account, set by an account above it. Its
``tenant_id`` is the sub-account's *parent* and ``account_id`` the sub-account: the
rights are the parent's decision about its child, so the parent's transaction
(``tidings.tenant_id`` = the parent) reads and writes the row under row-level security,
as the ``accounts`` policy already lets a parent see its direct sub-accounts. The
sub-account itself cannot change its own rights, not even on PostgreSQL by asking: the
policy keys on the parent. An ancestor further up acts in a transaction set to the
sub-account's parent, after the service has checked that it is above it; the runtime's
look-up (every row up a chain at once) runs as the cross-tenant role. A NULL column
means "no restriction beyond the parent's".

``message_counts``: the outbound messages of an account in a calendar month (UTC), kept
only while the account has a monthly cap. It is updated in the same transaction as the
messages it counts, with a conditional ``UPDATE … WHERE count + n <= cap``, so the cap
holds exactly however many processes send: the row lock serialises them, and a refused
send rolls back and counts nothing. ``tenant_id`` is the counted account. The row is
made, and made again whenever the rights above the account change
(``rights_version``, from the rows' ``revision``), by counting the month's messages once: messages sent while the
account had no cap count too.

``accounts`` gains ``status_reason_enc`` (why it was suspended or terminated, under the
account's data key: it is free text and may name a person), ``suspended_by`` (who: a
parent may lift only a suspension made by itself or below it, never the operator's)
and ``suspended_from`` (the status a resume restores, so a trial stays a trial).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"
TABLES = ("account_rights", "message_counts")


def upgrade() -> None:
    op.create_table(
        "account_rights",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("channels", sa.String(length=100), nullable=True),
        sa.Column("sender_ids_enc", sa.LargeBinary(), nullable=True),
        sa.Column("monthly_message_cap", sa.BigInteger(), nullable=True),
        sa.Column("requests_per_second", sa.Integer(), nullable=True),
        sa.Column("may_create_subaccounts", sa.Boolean(), nullable=True),
        sa.Column("may_manage_users", sa.Boolean(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_account_rights_account_id_accounts")),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_account_rights_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_rights")),
    )
    op.create_table(
        "message_counts",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("rights_version", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_message_counts_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("tenant_id", "month", name=op.f("pk_message_counts")),
    )
    with op.batch_alter_table("account_rights", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_rights_tenant_id"), ["tenant_id"],
                              unique=False)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("suspended_by", sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column("suspended_from", sa.String(length=30), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) "
                       f"WITH CHECK ({condition})")


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        for column in ("suspended_from", "suspended_by", "status_reason_enc"):
            batch_op.drop_column(column)
    for table in reversed(TABLES):
        op.drop_table(table)
