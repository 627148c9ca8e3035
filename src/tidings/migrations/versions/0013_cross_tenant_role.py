"""PostgreSQL: only members of ``tidings_cross_tenant`` may cross tenants; the runtime
roles get data access (DML) through ``tidings_runtime`` and own nothing.

Before, any session that set ``tidings.tenant_id`` to ``'*system*'`` saw every tenant,
so the role serving API requests could read all of them by asking. Now a policy lets
``'*system*'`` through only for a member of the ``tidings_cross_tenant`` group (the
workers' role: docs/operations.md); every other role sees its tenant, whatever it sets.

The two NOLOGIN group roles are made here if they are missing (which needs
``CREATEROLE``; otherwise a superuser makes them first, as the docs show), and the
role running this (the owner) joins ``tidings_cross_tenant``: a single-role setup
keeps working, and later data migrations can read across tenants. SQLite: nothing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CROSS_TENANT_ROLE = "tidings_cross_tenant"
RUNTIME_ROLE = "tidings_runtime"
ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
# Evaluated once per statement (an init plan), not once per row.
CROSS_TENANT = f"(SELECT pg_has_role('{CROSS_TENANT_ROLE}', 'MEMBER'))"
TENANT_TABLES = (
    "api_keys",
    "phone_numbers",
    "messages",
    "message_events",
    "idempotency_keys",
    "webhook_deliveries",
    "webhook_attempts",
    "audit_events",
    "jobs",
    "smpp_credentials",
    "whatsapp_windows",
    "number_claims",
)
ACCOUNTS_OWN = f"id = {ACTING} OR parent_id = {ACTING}"  # itself and its sub-accounts
DML = "SELECT, INSERT, UPDATE, DELETE"
SETUP_HINT = (
    "as a superuser (or a role with CREATEROLE), run: "
    f"CREATE ROLE {RUNTIME_ROLE} NOLOGIN; "
    f"CREATE ROLE {CROSS_TENANT_ROLE} NOLOGIN IN ROLE {RUNTIME_ROLE}; "
    f"GRANT {CROSS_TENANT_ROLE} TO <the role running tidings migrate>; "
    "then migrate again (docs/operations.md, PostgreSQL roles)")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _ensure_roles()
    system_only = f"({ACTING} = {SYSTEM} AND {CROSS_TENANT})"
    for table in TENANT_TABLES:
        _set_policy(table, f"tenant_id = {ACTING} OR {system_only}")
    _set_policy("accounts", f"{ACCOUNTS_OWN} OR {system_only}")
    _grant_data_access()


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        _set_policy(table, f"tenant_id = {ACTING} OR {ACTING} = {SYSTEM}")
    _set_policy("accounts", f"{ACCOUNTS_OWN} OR {ACTING} = {SYSTEM}")
    # The grants and roles stay: harmless under the old policies, and other databases
    # of the same server may use the roles.


def _set_policy(table: str, condition: str) -> None:
    op.execute(f"ALTER POLICY tenant_isolation ON {table} "
               f"USING ({condition}) WITH CHECK ({condition})")


def _ensure_roles() -> None:
    """The group roles exist and the migrating role is a member of the cross-tenant one."""
    bind = op.get_bind()
    try:  # a refusal aborts the migration's transaction: nothing of it stays
        for role, extra in ((RUNTIME_ROLE, ""), (CROSS_TENANT_ROLE, f" IN ROLE {RUNTIME_ROLE}")):
            if not _role_exists(role):
                op.execute(f"CREATE ROLE {role} NOLOGIN{extra}")
        if not bind.scalar(sa.text(f"SELECT pg_has_role('{CROSS_TENANT_ROLE}', 'MEMBER')")):
            op.execute(f"GRANT {CROSS_TENANT_ROLE} TO CURRENT_USER")
    except DBAPIError as exc:
        raise RuntimeError(f"migration 0013 needs the roles {RUNTIME_ROLE} and "
                           f"{CROSS_TENANT_ROLE}: {SETUP_HINT}") from exc


def _role_exists(role: str) -> bool:
    found = op.get_bind().scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                 {"r": role})
    return found is not None


def _grant_data_access() -> None:
    """Rows, not schema: the runtime roles read and write, and own and alter nothing."""
    op.execute(f"GRANT USAGE ON SCHEMA public TO {RUNTIME_ROLE}")
    op.execute(f"GRANT {DML} ON ALL TABLES IN SCHEMA public TO {RUNTIME_ROLE}")
    op.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {RUNTIME_ROLE}")
    # The runtime reads the schema's version (a start checks it) but never moves it.
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {RUNTIME_ROLE}")
    # Tables and sequences later migrations make (as this role) get the same grants.
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {DML} ON TABLES "
               f"TO {RUNTIME_ROLE}")
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE "
               f"ON SEQUENCES TO {RUNTIME_ROLE}")
