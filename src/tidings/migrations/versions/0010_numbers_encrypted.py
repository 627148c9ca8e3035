"""Numbers are personal data: phone_numbers.number becomes a ciphertext under the
account's key and a blind index under the platform's key; a number may have its own
webhook URL; number_claims holds claims awaiting their one-time code.

Existing numbers are encrypted here, with the key store, which only a migration run by
Tidings itself (``tidings migrate``, ``tidings serve``, ``tidings worker``) can reach:
``upgrade(url, settings=...)`` hands the settings over. A bare ``alembic upgrade`` on a
database that holds numbers stops with an error instead of leaving them in clear.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from alembic import context, op

import tidings.storage.sqltypes
from tidings.storage.vault import PLATFORM_KEYRING, TenantKeys, load_keys

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ACTING = "current_setting('tidings.tenant_id', true)"
SYSTEM = "'*system*'"
FIELD = "phone_numbers.number"
NUMBERS = sa.table("phone_numbers", sa.column("id", sa.String), sa.column("tenant_id", sa.String),
                   sa.column("number", sa.String), sa.column("number_enc", sa.LargeBinary),
                   sa.column("number_index", sa.String))


def upgrade() -> None:
    rows, keys = _read("number")  # first: on SQLite a failed step leaves its DDL behind
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("number_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("webhook_url", sa.String(length=2048), nullable=True))
    _write(rows, keys, _encrypt)
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_constraint("uq_phone_numbers_number", type_="unique")
        batch_op.drop_column("number")
        batch_op.alter_column("number_enc", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column("number_index", existing_type=sa.String(length=64),
                              nullable=False)
        batch_op.create_unique_constraint("uq_phone_numbers_number_index", ["number_index"])
    _create_claims()


def downgrade() -> None:
    rows, keys = _read("number_enc")
    op.drop_table("number_claims")
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.String(length=254), nullable=True))
    _write(rows, keys, _decrypt)
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_constraint("uq_phone_numbers_number_index", type_="unique")
        batch_op.drop_column("number_enc")
        batch_op.drop_column("number_index")
        batch_op.drop_column("webhook_url")
        batch_op.alter_column("number", existing_type=sa.String(length=254), nullable=False)
        batch_op.create_unique_constraint("uq_phone_numbers_number", ["number"])


Rewrite = Callable[[dict[str, TenantKeys], str, Any], dict[str, Any]]


def _encrypt(keys: dict[str, TenantKeys], tenant: str, number: Any) -> dict[str, Any]:
    return {"number_enc": keys[tenant].encrypt(number, field=FIELD),
            "number_index": keys[PLATFORM_KEYRING].blind_index(number, field=FIELD)}


def _decrypt(keys: dict[str, TenantKeys], tenant: str, blob: Any) -> dict[str, Any]:
    return {"number": keys[tenant].decrypt(bytes(blob), field=FIELD)}


def _read(source: str) -> tuple[list[Any], dict[str, TenantKeys]]:
    """Every row's (id, tenant, ``source`` column), and the keys to rewrite them with."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # every tenant's rows, past row-level security
        bind.execute(sa.text(f"SELECT set_config('tidings.tenant_id', {SYSTEM}, true)"))
    rows = list(bind.execute(sa.select(NUMBERS.c.id, NUMBERS.c.tenant_id, NUMBERS.c[source])))
    if not rows:
        return [], {}
    return rows, _keys({tenant for _, tenant, _ in rows} | {PLATFORM_KEYRING})


def _write(rows: list[Any], keys: dict[str, TenantKeys], rewrite: Rewrite) -> None:
    bind = op.get_bind()
    for row_id, tenant, value in rows:
        bind.execute(NUMBERS.update().where(NUMBERS.c.id == row_id)
                     .values(rewrite(keys, tenant, value)))


def _keys(keyrings: set[str]) -> dict[str, TenantKeys]:
    settings = context.config.attributes.get("settings")
    if settings is None:
        raise RuntimeError("phone_numbers holds numbers to re-encrypt, which needs the key "
                           "store: run `tidings migrate` rather than alembic itself")
    # The vault is asynchronous and this runs inside the migration's own event loop:
    # the keys are loaded on a loop of their own, in a thread of their own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, load_keys(settings, keyrings)).result()


def _create_claims() -> None:
    op.create_table(
        "number_claims",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", tidings.storage.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tidings.storage.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", tidings.storage.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["accounts.id"],
                                name=op.f("fk_number_claims_tenant_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_number_claims")),
    )
    with op.batch_alter_table("number_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_number_claims_tenant_id"), ["tenant_id"],
                              unique=False)
    if op.get_bind().dialect.name == "postgresql":
        condition = f"tenant_id = {ACTING} OR {ACTING} = {SYSTEM}"
        op.execute("ALTER TABLE number_claims ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE number_claims FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON number_claims USING ({condition}) "
                   f"WITH CHECK ({condition})")
