"""The one place personal data is encrypted.

Envelope encryption in two levels:

* a 32-byte **master key** (``TIDINGS_MASTER_KEY`` or a 0600 file in the key folder,
  ``TIDINGS_KEY_DIR``, by default beside the data folder and not in it)
  wraps every tenant's keys and never touches a database;
* each tenant has a random 32-byte **data key** (AES-256-GCM) and a 32-byte
  **blind-index key** (HMAC-SHA256), stored only wrapped, in a key store database
  kept apart from the main database, so a copy of the main database alone reveals
  nothing, and deleting a tenant's key row erases that tenant's data (crypto-erasure).

Field ciphertext is ``version (1 byte) || nonce (12 bytes) || ciphertext + tag``. The
GCM associated data binds the format version, the tenant id and the field name, so a
value copied to another tenant or another column fails to decrypt.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, Text, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from tidings.core.logs import get_logger
from tidings.core.settings import Settings
from tidings.storage.sqltypes import UTCDateTime

__all__ = ["PLATFORM_KEYRING", "TenantKeys", "Vault", "VaultError", "load_keys",
           "load_master_key"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT_VERSION = 1
MASTER_KEY_FILE = "master.key"

# Distinct labels so a wrapped data key can never be unwrapped as an index key
# (or the other way round), nor moved to another tenant's row.
_DATA_KEY_LABEL = b"tidings-tenant-key:"
_INDEX_KEY_LABEL = b"tidings-tenant-index-key:"
_AUDIT_KEY_LABEL = b"tidings-audit-chain-key:v1"
_FIELD_AAD_LABEL = b"tidings-field:v%d:" % FORMAT_VERSION

# The keyring of the platform itself, beside the tenants' in the key store: its index key
# makes blind indexes that must match across tenants (a number belongs to at most one
# account, and an inbound message finds its owner among all of them). No account id
# can take this name (account ids are ``acc_…``).
PLATFORM_KEYRING = "*platform*"

_VERSION_PREFIX = bytes([FORMAT_VERSION])
log = get_logger("tidings.vault")
_HEADER_BYTES = 1 + NONCE_BYTES


class VaultError(Exception):
    """Data or keys cannot be decrypted, or the key material is unusable."""


# --------------------------------------------------------------------------- tenant keys


class TenantKeys:
    """One tenant's unwrapped keys: synchronous and cheap, for the hot path.

    Ciphers are built once here; ``encrypt``/``decrypt`` only draw a nonce and run
    AES-GCM, a few microseconds for a short field.
    """

    __slots__ = ("_aad_cache", "_data_aead", "_index_mac", "key_version", "tenant_id")

    def __init__(
        self, tenant_id: str, data_key: bytes, index_key: bytes, *, key_version: int = 1
    ) -> None:
        if len(data_key) != KEY_BYTES or len(index_key) != KEY_BYTES:
            raise VaultError("tenant keys must be 32 bytes each")
        self.tenant_id = tenant_id
        self.key_version = key_version
        self._data_aead: AESGCM | None = AESGCM(data_key)
        # The HMAC key schedule is computed once; each index call copies the state.
        self._index_mac: hmac.HMAC | None = hmac.new(index_key, digestmod=hashlib.sha256)
        self._aad_cache: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"TenantKeys(tenant_id={self.tenant_id!r}, key_version={self.key_version})"

    def encrypt(self, plaintext: str, *, field: str) -> bytes:
        """Encrypt ``plaintext`` for column ``field``; a fresh random nonce every call."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead().encrypt(nonce, plaintext.encode(), self._aad(field))
        return _VERSION_PREFIX + nonce + sealed

    def decrypt(self, blob: bytes, *, field: str) -> str:
        """Decrypt a value from ``encrypt``; ``VaultError`` if tampered or misplaced."""
        if len(blob) < _HEADER_BYTES + TAG_BYTES or blob[0] != FORMAT_VERSION:
            raise VaultError(f"not a vault ciphertext (field {field!r})")
        try:
            plaintext = self._aead().decrypt(
                blob[1:_HEADER_BYTES], blob[_HEADER_BYTES:], self._aad(field)
            )
        except InvalidTag:
            # Deliberately vague: tampering, wrong tenant and wrong field look alike.
            raise VaultError(
                f"cannot decrypt field {field!r} for tenant {self.tenant_id!r}: "
                "tampered, or written for another tenant or field"
            ) from None
        return plaintext.decode()

    def encrypt_optional(self, plaintext: str | None, *, field: str) -> bytes | None:
        """``encrypt``, passing ``None`` through (nullable columns)."""
        return None if plaintext is None else self.encrypt(plaintext, field=field)

    def decrypt_optional(self, blob: bytes | None, *, field: str) -> str | None:
        """``decrypt``, passing ``None`` through (nullable columns)."""
        return None if blob is None else self.decrypt(blob, field=field)

    def blind_index(self, value: str, *, field: str) -> str:
        """Deterministic search token: hex HMAC-SHA256(index key, field NUL value).

        Equal values in the same tenant and field give equal tokens, so equality
        look-ups work without decrypting; other tenants and fields get unrelated ones.
        """
        return self.fingerprint(value.encode(), purpose=field)

    def fingerprint(self, data: bytes, *, purpose: str) -> str:
        """Hex HMAC-SHA256(index key, purpose NUL data): a keyed digest of ``data``.

        What a check needs to recognise a value again (an idempotent request) without
        storing anything a copy of the database could be matched against: without
        the tenant's key the digest cannot be recomputed, and after crypto-erasure
        not even with every other key. ``purpose`` keeps it apart from blind indexes.
        """
        base = self._index_mac
        if base is None:
            raise self._destroyed()
        mac = base.copy()
        mac.update(purpose.encode() + b"\x00" + data)
        return mac.hexdigest()

    def _aead(self) -> AESGCM:
        aead = self._data_aead
        if aead is None:
            raise self._destroyed()
        return aead

    def _destroyed(self) -> VaultError:
        return VaultError(f"the keys of tenant {self.tenant_id!r} were destroyed")

    def _aad(self, field: str) -> bytes:
        # Few distinct fields exist, so building the AAD once per field keeps it off
        # the hot path. The tenant id is length-prefixed so (tenant, field) pairs
        # cannot collide whatever characters they contain.
        aad = self._aad_cache.get(field)
        if aad is None:
            tenant = self.tenant_id.encode()
            aad = _FIELD_AAD_LABEL + len(tenant).to_bytes(4, "big") + tenant + field.encode()
            self._aad_cache[field] = aad
        return aad

    def _revoke(self) -> None:
        """Make this object unusable: callers holding it must not outlive erasure."""
        self._data_aead = None
        self._index_mac = None


# --------------------------------------------------------------------------- master key


def load_master_key(settings: Settings) -> bytes:
    """The 32-byte master key: from ``settings.master_key`` or ``<key folder>/master.key``.

    The setting is base64 (standard or URL-safe alphabet) of exactly 32 bytes; a bad
    value raises ``ValueError``. Without it the key file is read, or created with a
    fresh random key (mode 0600) when missing; a file readable by group or others is
    refused with ``VaultError``, as ssh refuses loose private keys.
    """
    if settings.master_key:
        return decode_master_key(settings.master_key, source="TIDINGS_MASTER_KEY")
    path = settings.resolved_key_dir() / MASTER_KEY_FILE
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        return _create_key_file(path)


def decode_master_key(text: str, *, source: str = "master key") -> bytes:
    """Decode base64 (either alphabet, padding optional) of exactly 32 bytes."""
    # The value itself never goes into a message: it is the secret.
    compact = "".join(text.split()).replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        key = base64.b64decode(compact, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise ValueError(f"{source} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{source} must be base64 of exactly {KEY_BYTES} bytes, got {len(key)} bytes; "
            'generate one with: python -c "import base64, os; '
            'print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return key


def _read_key_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        # fstat the descriptor we read from, so the checked file is the read file.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise VaultError(f"master key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise VaultError(
                f"master key file {path} has permissions {stat.S_IMODE(info.st_mode):04o}: "
                f"it must not be accessible by group or others; run: chmod 600 {path}"
            )
        content = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        return decode_master_key(content.decode("latin-1"), source=f"master key file {path}")
    except ValueError as exc:
        raise VaultError(str(exc)) from None


def _create_key_file(path: Path) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
    # Write a private temp file, then hard-link it into place: the link either
    # appears complete or fails because another process won the race, so no reader
    # ever sees a half-written key and no existing key is ever overwritten.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        _write_private_file(tmp, encoded)
        with contextlib.suppress(FileExistsError):  # another process won: use theirs
            os.link(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _write_private_file(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)  # losing the master key loses every tenant's data
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- key store

_keystore_metadata = MetaData()

tenant_keys_table = Table(
    "tenant_keys",
    _keystore_metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("key_version", Integer, nullable=False),
    Column("wrapped_data_key", LargeBinary, nullable=False),
    Column("wrapped_index_key", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


# The head of each tenant's audit chain, HMAC'd under the audit key: kept here, apart
# from the database, so that deleting the chain's last events cannot go unnoticed.
audit_checkpoints_table = Table(
    "audit_checkpoints",
    _keystore_metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", Text, nullable=False),
    Column("mac", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


class _WrappedKeys(NamedTuple):
    key_version: int
    data_key: bytes
    index_key: bytes


def _make_keystore_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _tune_keystore_sqlite)
        return engine
    # Keys are loaded once per tenant and then cached: a small pool is plenty.
    return create_async_engine(url, pool_size=2, max_overflow=3, pool_pre_ping=True)


def _tune_keystore_sqlite(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous=FULL")  # a created key must survive a crash
    cursor.execute("PRAGMA busy_timeout=30000")
    # Overwrite deleted rows with zeros, so a destroyed tenant's wrapped keys do
    # not linger in free pages where the master key could still unwrap them.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def insert_if_absent(dialect_name: str, values: dict[str, Any],
                     table: Table = tenant_keys_table) -> Insert:
    """``INSERT ... ON CONFLICT (tenant_id) DO NOTHING`` for the key store's dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing(
            index_elements=["tenant_id"]
        )
    if dialect_name == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing(
            index_elements=["tenant_id"]
        )
    raise VaultError(f"unsupported key store database: {dialect_name}")


# --------------------------------------------------------------------------- vault


class Vault:
    """Hands out each tenant's keys, creating them on first use, cached afterwards."""

    def __init__(self, master_key: bytes, engine: AsyncEngine) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._master = AESGCM(master_key)
        self._engine = engine
        # Seals the audit chains: derived from the master key, so the database never
        # holds it and a tenant's crypto-erasure leaves its audit chain verifiable.
        self.audit_key = hmac.digest(master_key, _AUDIT_KEY_LABEL, "sha256")
        self._cache: dict[str, TenantKeys] = {}
        # One lock per tenant: a burst of first requests creates one key, while
        # loading different tenants still proceeds in parallel.
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    async def open(cls, settings: Settings) -> Vault:
        """Load the master key and open (creating if needed) the key store."""
        master_key = load_master_key(settings)
        if not settings.keystore_url:
            settings.resolved_key_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        if settings.keys_in_data_dir:
            log.warning("keys_in_data_dir", data_dir=str(settings.data_dir),
                        advice="move master.key and keys.db apart: see docs/operations.md")
        engine = _make_keystore_engine(settings.resolved_keystore_url())
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_keystore_metadata.create_all)
        except BaseException:
            await engine.dispose()
            raise
        return cls(master_key, engine)

    async def keys_for(self, tenant_id: str) -> TenantKeys:
        """The tenant's keys, created on first use; ``VaultError`` if they won't unwrap."""
        keys = self._cache.get(tenant_id)
        if keys is not None:
            return keys
        if not tenant_id:
            raise ValueError("tenant_id must not be empty")
        async with self._lock_for(tenant_id):
            keys = self._cache.get(tenant_id)
            if keys is None:
                keys = self._unwrap(tenant_id, await self._load_or_create(tenant_id))
                self._cache[tenant_id] = keys
            return keys

    async def platform_keys(self) -> TenantKeys:
        """The platform's keyring: for blind indexes that must match across tenants."""
        return await self.keys_for(PLATFORM_KEYRING)

    async def destroy_tenant_keys(self, tenant_id: str) -> None:
        """Crypto-erase a tenant: delete its keys so its ciphertext is unreadable.

        Also revokes this process's cached ``TenantKeys``. Other processes keep a
        cached copy until they restart, and on PostgreSQL the deleted row survives
        until vacuumed (and in backups), still unwrappable with the master key.
        """
        async with self._lock_for(tenant_id):
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(tenant_keys_table).where(tenant_keys_table.c.tenant_id == tenant_id)
                )
            keys = self._cache.pop(tenant_id, None)
            if keys is not None:
                keys._revoke()

    @property
    def keystore(self) -> AsyncEngine:
        """The key store's engine, for what must live apart from the database."""
        return self._engine

    async def close(self) -> None:
        """Release the key store's connections."""
        await self._engine.dispose()

    def _lock_for(self, tenant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    async def _load_or_create(self, tenant_id: str) -> _WrappedKeys:
        wrapped = await self._select(tenant_id)
        if wrapped is not None:
            return wrapped
        # Another process may insert at the same moment: insert-if-absent, then
        # read back whichever row won, so every process ends with the same key.
        await self._insert_new(tenant_id)
        wrapped = await self._select(tenant_id)
        if wrapped is None:
            raise VaultError(f"keys of tenant {tenant_id!r} were destroyed while being created")
        return wrapped

    async def _select(self, tenant_id: str) -> _WrappedKeys | None:
        table = tenant_keys_table
        query = select(
            table.c.key_version, table.c.wrapped_data_key, table.c.wrapped_index_key
        ).where(table.c.tenant_id == tenant_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return _WrappedKeys(row[0], bytes(row[1]), bytes(row[2]))

    async def _insert_new(self, tenant_id: str) -> None:
        tenant = tenant_id.encode()
        values = {
            "tenant_id": tenant_id,
            "key_version": 1,
            "wrapped_data_key": self._wrap_new_key(_DATA_KEY_LABEL + tenant),
            "wrapped_index_key": self._wrap_new_key(_INDEX_KEY_LABEL + tenant),
            "created_at": datetime.now(UTC),
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert_if_absent(conn.dialect.name, values))

    def _unwrap(self, tenant_id: str, wrapped: _WrappedKeys) -> TenantKeys:
        tenant = tenant_id.encode()
        return TenantKeys(
            tenant_id,
            self._unwrap_key(wrapped.data_key, _DATA_KEY_LABEL + tenant, tenant_id),
            self._unwrap_key(wrapped.index_key, _INDEX_KEY_LABEL + tenant, tenant_id),
            key_version=wrapped.key_version,
        )

    def _wrap_new_key(self, aad: bytes) -> bytes:
        """A fresh random key, wrapped: nonce || AES-GCM(master, key, aad)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, secrets.token_bytes(KEY_BYTES), aad)

    def _unwrap_key(self, wrapped: bytes, aad: bytes, tenant_id: str) -> bytes:
        try:
            return self._master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise VaultError(
                f"cannot unwrap the keys of tenant {tenant_id!r}: wrong master key, "
                "or the key store was tampered with"
            ) from None


async def load_keys(settings: Settings, keyrings: Iterable[str]) -> dict[str, TenantKeys]:
    """The keys of each keyring, from a vault opened and closed for this call alone
    (a data migration, which runs apart from any runtime)."""
    vault = await Vault.open(settings)
    try:
        return {name: await vault.keys_for(name) for name in keyrings}
    finally:
        await vault.close()
