"""Consent records: ``consent_events``, appended and never changed (CON-1).

Each row is one event of a person's consent on a channel for a purpose; the state in
force is derived from them. The table has the tenant policy of 0013. On PostgreSQL a
trigger keeps it append-only: it refuses an update for every role but the table's
owner, and a delete for every role but the owner and the members of
``tidings_cross_tenant``, whose purge of a terminated account deletes every row of it
(``privacy/termination.py``). The app role, which serves the API, can add events and
read them, nothing else. The owner is let through because it could drop the trigger
anyway; it is the role that migrates, which the running processes do not use. SQLite has
no roles: there, only the code (which has no update or delete of an event) holds it.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-08 18:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

TABLE = "consent_events"
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
CROSS_TENANT = "(SELECT pg_has_role('tidings_cross_tenant', 'MEMBER'))"
GUARD = "consent_events_append_only"
GUARD_FUNCTION = f"""
CREATE FUNCTION {GUARD}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                   'MEMBER') THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND pg_has_role(current_user, 'tidings_cross_tenant', 'MEMBER') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'consent event % cannot be changed or deleted: consent events are append-only',
        OLD.id USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        TABLE,
        _text("id", 40), _text("tenant_id", 40), _text("subject_index", 64),
        _text("subject_key", 40, nullable=True), _text("channel", 20),
        _text("purpose", 20), _text("mechanism", 20), _text("source", 20),
        sa.Column("evidence_ref_enc", sa.LargeBinary(), nullable=True),
        _text("text_sha256", 64, nullable=True), _text("text_version", 40, nullable=True),
        sa.Column("ip_prefix_enc", sa.LargeBinary(), nullable=True),
        _when("captured_at"), _text("captured_by", 80), _when("recorded_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_consent_events_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index("ix_consent_events_tenant_id_subject_index_id", TABLE,
                    ["tenant_id", "subject_index", "id"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR ({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {TABLE} USING ({condition}) "
                   f"WITH CHECK ({condition})")
        op.execute(GUARD_FUNCTION)
        op.execute(f"CREATE TRIGGER {GUARD} BEFORE UPDATE OR DELETE ON {TABLE} "
                   f"FOR EACH ROW EXECUTE FUNCTION {GUARD}()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {GUARD} ON {TABLE}")
        op.execute(f"DROP FUNCTION {GUARD}()")
    op.drop_index("ix_consent_events_tenant_id_subject_index_id", table_name=TABLE)
    op.drop_table(TABLE)
