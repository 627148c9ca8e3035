"""Audit events name the request that made them; on PostgreSQL the runtime roles may add
audit events and seal them, and nothing else.

``audit_events.request_id`` is the API request a change was made in (its
``X-Request-Id``, the client's or the one Tidings made). It is nullable: events recorded
before this revision have none, nor do changes no request made (the operator's CLI, SMPP
binds, the platform's chores).

PostgreSQL only: the runtime roles (``tidings_runtime``) lose ``UPDATE`` and ``DELETE``
on ``audit_events`` and get back ``UPDATE`` of the three chain columns, which is all the
sealer writes. A trigger refuses, for every role but the table's owner, any delete and
any update other than sealing: setting ``seq``, ``prev_hash`` and ``hash`` together on
an event that has none of them, every other column left as it was. A sealed event then
never changes. The owner is let through because it could drop the trigger anyway; it is
the role that migrates, which the running processes do not use (docs/operations.md).
SQLite has no roles: whoever may write its file may change any row, and the keyed chain
is what shows it.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

RUNTIME_ROLE = "tidings_runtime"
CHAIN_COLUMNS = "seq, prev_hash, hash"
GUARD = "audit_events_append_only"
# Anything the owner does passes (see above). A delete is refused; an update passes only
# when it seals an unsealed event: the three chain columns go from none to all set and
# the rest of the row (compared as JSON, so a column added later is covered) stays.
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
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit event % cannot be deleted: the audit trail is append-only',
            OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.seq IS NOT NULL OR OLD.prev_hash IS NOT NULL OR OLD.hash IS NOT NULL THEN
        RAISE EXCEPTION 'audit event % is sealed: it cannot change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL
            OR to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash']
               IS DISTINCT FROM to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash'] THEN
        RAISE EXCEPTION 'audit event % may only be sealed (seq, prev_hash, hash set)',
            OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        _append_only()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {GUARD} ON audit_events")
        op.execute(f"DROP FUNCTION {GUARD}()")
        op.execute(f"REVOKE UPDATE ({CHAIN_COLUMNS}) ON audit_events FROM {RUNTIME_ROLE}")
        op.execute(f"GRANT UPDATE, DELETE ON audit_events TO {RUNTIME_ROLE}")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("request_id")


def _append_only() -> None:
    """AUD-2: the runtime roles insert and seal audit events; they change and delete none."""
    # The privileges refuse a change of any other column and every delete up front; the
    # trigger refuses what a column privilege cannot tell: re-sealing a sealed event.
    op.execute(f"REVOKE UPDATE, DELETE ON audit_events FROM {RUNTIME_ROLE}")
    op.execute(f"GRANT UPDATE ({CHAIN_COLUMNS}) ON audit_events TO {RUNTIME_ROLE}")
    op.execute(GUARD_FUNCTION)
    op.execute(f"CREATE TRIGGER {GUARD} BEFORE UPDATE OR DELETE ON audit_events "
               f"FOR EACH ROW EXECUTE FUNCTION {GUARD}()")
