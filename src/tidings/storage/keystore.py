"""The key store's tables: a database apart from the application's.

Every key in it is wrapped (AES-256-GCM) by the key above it:

    master key (file or environment, never in a database)
      └─ tenant_keks: a key-encryption key per tenant, versioned; rotation adds one
           ├─ tenant_keys: the tenant's data key and blind-index key
           └─ subject_keys: data keys of data subjects (phone numbers or e-mail
              addresses within the tenant); whose each is, only the application
              database knows: every message names its key and its person's blind index

Deleting a ``subject_keys`` row erases that subject; deleting a tenant's rows erases the
tenant. ``erasure_ledger`` remembers both, with no personal data (a subject is named by
its key's random id), so that a restored backup of the application database is
scrubbed again before it serves (``tidings.privacy.ledger_replay``).

``audit_checkpoints`` holds the head of each tenant's audit chain, apart from the
database whose events it vouches for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from tidings.storage.ciphers import VaultError
from tidings.storage.sqltypes import UTCDateTime

__all__ = ["audit_checkpoints_table", "create_keystore", "erasure_ledger_table",
           "insert_if_absent", "kek_table", "make_keystore_engine", "subject_keys_table",
           "tenant_keys_table"]

keystore_metadata = MetaData()

# The tenant's data and index keys. ``kek_version`` names the KEK that wraps them; NULL
# for rows written before KEKs existed, wrapped by the master key directly until the
# tenant's first rotation moves them under a KEK.
tenant_keys_table = Table(
    "tenant_keys",
    keystore_metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("key_version", Integer, nullable=False),
    Column("wrapped_data_key", LargeBinary, nullable=False),
    Column("wrapped_index_key", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("kek_version", Integer, nullable=True),
)

# ``state``: ``active`` (wraps new keys; one a tenant) or ``retired`` (still unwraps the
# keys not yet moved; deleted once none is left).
kek_table = Table(
    "tenant_keks",
    keystore_metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
)

# Whose key each is, the key store does not know: each message under it names it beside
# its person's blind index (``tidings.privacy.subjects``).
subject_keys_table = Table(
    "subject_keys",
    keystore_metadata,
    Column("key_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_subject_keys_tenant_id_kek_version", "tenant_id", "kek_version"),
)

# One row an erasure: ``subject_key`` NULL means the whole tenant.
erasure_ledger_table = Table(
    "erasure_ledger",
    keystore_metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("subject_key", Text, nullable=True),
    Column("erased_at", UTCDateTime, nullable=False),
)

# The head of each tenant's audit chain, HMAC'd under the audit key: kept here, apart
# from the database, so that deleting the chain's last events cannot go unnoticed.
audit_checkpoints_table = Table(
    "audit_checkpoints",
    keystore_metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", Text, nullable=False),
    Column("mac", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def make_keystore_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _tune_keystore_sqlite)
        return engine
    # Keys are loaded once per tenant or subject and then cached: a small pool is plenty.
    return create_async_engine(url, pool_size=2, max_overflow=3, pool_pre_ping=True)


def _tune_keystore_sqlite(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # The rollback journal, not a write-ahead log: a WAL file keeps the frames that held
    # a key after the key is deleted, until they happen to be overwritten; the journal
    # is deleted at each commit.
    cursor.execute("PRAGMA journal_mode=DELETE")
    cursor.execute("PRAGMA synchronous=FULL")  # a created key must survive a crash
    cursor.execute("PRAGMA busy_timeout=30000")
    # Overwrite deleted rows with zeros, so a destroyed key does not linger in free
    # pages where the key above it could still unwrap it.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


async def create_keystore(engine: AsyncEngine) -> None:
    """Create the tables, and add what tables made by earlier versions lack."""
    async with engine.begin() as conn:
        await conn.run_sync(_create_and_upgrade)


def _create_and_upgrade(conn: Connection) -> None:
    keystore_metadata.create_all(conn)
    columns = {c["name"] for c in inspect(conn).get_columns("tenant_keys")}
    if "kek_version" not in columns:
        conn.execute(text("ALTER TABLE tenant_keys ADD COLUMN kek_version INTEGER"))


def insert_if_absent(dialect_name: str, values: dict[str, Any] | list[dict[str, Any]],
                     table: Table = tenant_keys_table) -> Insert:
    """``INSERT ... ON CONFLICT (primary key) DO NOTHING`` for the key store's dialect."""
    keys = [c.name for c in table.primary_key.columns]
    if dialect_name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing(
            index_elements=keys)
    if dialect_name == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
    raise VaultError(f"unsupported key store database: {dialect_name}")
