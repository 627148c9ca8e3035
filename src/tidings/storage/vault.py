"""The one place keys are made, unwrapped, cached and destroyed.

Envelope encryption in three levels (the tables in ``keystore.py``):

* a 32-byte **master key** (``TIDINGS_MASTER_KEY`` or a 0600 file in the key folder,
  ``TIDINGS_KEY_DIR``, by default beside the data folder and not in it) wraps every
  tenant's key-encryption keys and never touches a database;
* each tenant has a **key-encryption key** (KEK), versioned: rotation
  (``kek_rotation.py``) re-wraps the keys below under a new one and destroys the old,
  without touching any data;
* under it, the tenant's **data key** and **blind-index key** (``TenantKeys``), and a
  **data key per data subject** (``SubjectKey``, ``subject_keys.py``).

All of them live only wrapped, in a key store kept apart from the application
database, so a copy of that database alone reveals nothing. Deleting a subject's key
erases that subject; deleting a tenant's keys erases the tenant (crypto-erasure). Each
erasure is written to the **erasure ledger** in the same transaction, which other
processes read to drop the keys they cached (``poll_erasures``) and which is replayed on
the application database after a restore (``tidings.privacy.ledger_replay``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.core.logs import get_logger
from tidings.core.settings import Settings
from tidings.storage.ciphers import KEY_BYTES, TenantKeys, VaultError, length_prefixed, unwrap, wrap
from tidings.storage.keystore import (
    create_keystore,
    erasure_ledger_table,
    insert_if_absent,
    kek_table,
    make_keystore_engine,
    subject_keys_table,
    tenant_keys_table,
)
from tidings.storage.subject_keys import POOL_BATCH, SubjectKeyring

__all__ = ["PLATFORM_KEYRING", "TenantKeys", "Vault", "VaultError", "load_keys",
           "load_master_key"]

MASTER_KEY_FILE = "master.key"

# Distinct labels so a wrapped data key can never be unwrapped as an index key
# (or the other way round), nor moved to another tenant's row.
DATA_KEY_LABEL = b"tidings-tenant-key:"
INDEX_KEY_LABEL = b"tidings-tenant-index-key:"
_KEK_LABEL = b"tidings-tenant-kek:"
_AUDIT_KEY_LABEL = b"tidings-audit-chain-key:v1"
ACTIVE, RETIRED = "active", "retired"

# The keyring of the platform itself, beside the tenants' in the key store: its index key
# makes blind indexes that must match across tenants (a number belongs to at most one
# account, and an inbound message finds its owner among all of them). No account id
# can take this name (account ids are ``acc_…``).
PLATFORM_KEYRING = "*platform*"

# How many entries ``poll_erasures`` reads again below the last it saw: a PostgreSQL
# sequence hands numbers out in insert order, not commit order, so an erasure whose
# transaction was slower can appear below one already seen.
_LEDGER_OVERLAP = 100

log = get_logger("tidings.vault")


def kek_aad(tenant_id: str, version: int) -> bytes:
    return _KEK_LABEL + length_prefixed(tenant_id, str(version))


class _WrappedKeys(NamedTuple):
    key_version: int
    data_key: bytes
    index_key: bytes
    kek_version: int | None  # None: wrapped by the master key (before KEKs)


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


# --------------------------------------------------------------------------- vault


class Vault:
    """Hands out each tenant's keys, creating them on first use, cached afterwards."""

    def __init__(self, master_key: bytes, engine: AsyncEngine, *,
                 subject_cache_size: int = 20_000, subject_pool_batch: int = POOL_BATCH) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._master = AESGCM(master_key)
        self._engine = engine
        # Seals the audit chains: derived from the master key, so the database never
        # holds it and a tenant's crypto-erasure leaves its audit chain verifiable.
        self.audit_key = hmac.digest(master_key, _AUDIT_KEY_LABEL, "sha256")
        self._cache: dict[str, TenantKeys] = {}
        self._keks: dict[tuple[str, int], AESGCM] = {}
        self._subject_cache_size = subject_cache_size
        self._subject_pool_batch = subject_pool_batch
        # One lock per tenant: a burst of first requests creates one key, while
        # loading different tenants still proceeds in parallel.
        self._locks: dict[str, asyncio.Lock] = {}
        self._ledger_seen = 0  # the last ledger entry this process has applied
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: Settings) -> Vault:
        """Load the master key and open (creating if needed) the key store."""
        master_key = load_master_key(settings)
        if not settings.keystore_url:
            settings.resolved_key_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        if settings.keys_in_data_dir:
            log.warning("keys_in_data_dir", data_dir=str(settings.data_dir),
                        advice="move master.key and keys.db apart: see docs/operations.md")
        engine = make_keystore_engine(settings.resolved_keystore_url())
        try:
            await create_keystore(engine)
        except BaseException:
            await engine.dispose()
            raise
        vault = cls(master_key, engine, subject_cache_size=settings.subject_key_cache_size,
                    subject_pool_batch=settings.subject_key_pool_batch)
        vault._ledger_seen = await latest_erasure(engine)  # nothing cached yet to drop
        return vault

    # ------------------------------------------------------------------ tenants

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
                keys = await self._unwrap(tenant_id, await self._load_or_create(tenant_id))
                self._cache[tenant_id] = keys
            return keys

    async def platform_keys(self) -> TenantKeys:
        """The platform's keyring: for blind indexes that must match across tenants."""
        return await self.keys_for(PLATFORM_KEYRING)

    async def destroy_tenant_keys(self, tenant_id: str, *,
                                  now: datetime | None = None) -> None:
        """Crypto-erase a tenant: delete its KEKs and every key under them, so its
        ciphertext is unreadable, and write the erasure to the ledger.

        This process drops its cached keys at once, others at their next
        ``poll_erasures``. On PostgreSQL the deleted rows survive until vacuumed (and
        in the key store's backups): the ledger replay is what keeps a restore from
        bringing the tenant's data back.
        """
        async with self._lock_for(tenant_id):
            async with self._engine.begin() as conn:
                for table in (tenant_keys_table, subject_keys_table, kek_table):
                    await conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
                await conn.execute(insert(erasure_ledger_table).values(
                    tenant_id=tenant_id, subject_key=None, erased_at=now or datetime.now(UTC)))
            self._forget_tenant(tenant_id)

    # ------------------------------------------------------------------ subjects

    async def erase_subject(self, tenant_id: str, key_id: str, *,
                            now: datetime | None = None) -> bool:
        """Destroy one subject's key and write the erasure to the ledger (at ``now``,
        the wall clock by default), in one transaction; ``False`` if there was no such
        key (erased already)."""
        table = subject_keys_table
        async with self._engine.begin() as conn:
            gone = await conn.execute(delete(table).where(
                table.c.tenant_id == tenant_id, table.c.key_id == key_id))
            if not gone.rowcount:
                return False
            await conn.execute(insert(erasure_ledger_table).values(
                tenant_id=tenant_id, subject_key=key_id, erased_at=now or datetime.now(UTC)))
        self._forget_subject(tenant_id, key_id)
        return True

    async def poll_erasures(self) -> int:
        """Drop the cached keys that another process erased; how many entries were read.

        Every process that encrypts runs this every few seconds, so a subject's key
        erased elsewhere stops being used here within that time.
        """
        ledger = erasure_ledger_table
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(
                ledger.c.seq, ledger.c.tenant_id, ledger.c.subject_key,
            ).where(ledger.c.seq > self._ledger_seen - _LEDGER_OVERLAP))).all()
        for seq, tenant_id, key_id in rows:
            if key_id is None:
                self._forget_tenant(tenant_id)
            else:
                self._forget_subject(tenant_id, key_id)
            self._ledger_seen = max(self._ledger_seen, seq)
        return len(rows)

    def watch_erasures(self, every_seconds: float) -> None:
        """``poll_erasures`` every so often, until ``close``."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(every_seconds))

    async def _watch(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.poll_erasures()
            except Exception as exc:  # a key store hiccup: the next round tries again
                log.warning("erasure_poll_failed", error=type(exc).__name__)

    # ------------------------------------------------------------------ key-encryption keys

    async def active_kek(self, tenant_id: str) -> tuple[int, AESGCM]:
        """The tenant's KEK that wraps new keys, made on first use. Read from the key
        store each time (a rotation elsewhere moves it), which only key creation does."""
        row = await self._active_kek_row(tenant_id)
        if row is None:
            await self.insert_kek(tenant_id, 1)
            row = await self._active_kek_row(tenant_id)
            if row is None:
                raise VaultError(f"keys of tenant {tenant_id!r} were destroyed while "
                                 "being created")
        version, wrapped = row
        return version, self._remember_kek(tenant_id, version, wrapped)

    async def kek(self, tenant_id: str, version: int) -> AESGCM:
        """One version of the tenant's KEK, active or retired, to unwrap with."""
        kek = self._keks.get((tenant_id, version))
        if kek is not None:
            return kek
        async with self._engine.connect() as conn:
            wrapped = await conn.scalar(select(kek_table.c.wrapped_key).where(
                kek_table.c.tenant_id == tenant_id, kek_table.c.version == version))
        if wrapped is None:
            raise VaultError(f"key-encryption key {version} of tenant {tenant_id!r} was "
                             "destroyed")
        return self._remember_kek(tenant_id, version, bytes(wrapped))

    async def insert_kek(self, tenant_id: str, version: int) -> None:
        """A new random KEK ``version`` for the tenant, active, if that version is absent."""
        values = {"tenant_id": tenant_id, "version": version, "state": ACTIVE,
                  "wrapped_key": wrap(self._master, secrets.token_bytes(KEY_BYTES),
                                      kek_aad(tenant_id, version)),
                  "created_at": datetime.now(UTC), "retired_at": None}
        async with self._engine.begin() as own:
            await own.execute(insert_if_absent(own.dialect.name, values, kek_table))

    def forget_kek(self, tenant_id: str, version: int) -> None:
        self._keks.pop((tenant_id, version), None)

    def master_unwrap(self, wrapped: bytes, aad: bytes, *, what: str) -> bytes:
        """A key wrapped by the master key itself (tenant keys made before KEKs)."""
        return unwrap(self._master, wrapped, aad, what=what)

    # ------------------------------------------------------------------ plumbing

    @property
    def keystore(self) -> AsyncEngine:
        """The key store's engine, for what must live apart from the database."""
        return self._engine

    async def close(self) -> None:
        """Stop watching the ledger, delete the unused keys of the subject key pools;
        release the key store's connections."""
        for keys in self._cache.values():
            if keys.subjects is not None:
                try:
                    await keys.subjects.discard_pool()
                except Exception as exc:  # unused random keys left behind: harmless
                    log.warning("subject_key_pool_not_discarded", error=type(exc).__name__)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._engine.dispose()

    def _lock_for(self, tenant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    def _forget_tenant(self, tenant_id: str) -> None:
        keys = self._cache.pop(tenant_id, None)
        if keys is not None:
            keys._revoke()
            if keys.subjects is not None:
                keys.subjects.forget_all()
        for cached in [k for k in self._keks if k[0] == tenant_id]:
            del self._keks[cached]

    def _forget_subject(self, tenant_id: str, key_id: str) -> None:
        keys = self._cache.get(tenant_id)
        if keys is not None and keys.subjects is not None:
            keys.subjects.forget(key_id)

    def _remember_kek(self, tenant_id: str, version: int, wrapped: bytes) -> AESGCM:
        kek = self._keks.get((tenant_id, version))
        if kek is None:
            kek = AESGCM(unwrap(self._master, wrapped, kek_aad(tenant_id, version),
                                what=f"the key-encryption key of tenant {tenant_id!r}: "
                                     "wrong master key?"))
            self._keks[(tenant_id, version)] = kek
        return kek

    async def _active_kek_row(self, tenant_id: str) -> tuple[int, bytes] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(kek_table.c.version, kek_table.c.wrapped_key)
                                      .where(kek_table.c.tenant_id == tenant_id,
                                             kek_table.c.state == ACTIVE))).first()
        return None if row is None else (row[0], bytes(row[1]))

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
            table.c.key_version, table.c.wrapped_data_key, table.c.wrapped_index_key,
            table.c.kek_version,
        ).where(table.c.tenant_id == tenant_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return _WrappedKeys(row[0], bytes(row[1]), bytes(row[2]), row[3])

    async def _insert_new(self, tenant_id: str) -> None:
        version, kek = await self.active_kek(tenant_id)
        tenant = tenant_id.encode()
        values = {
            "tenant_id": tenant_id,
            "key_version": 1,
            "wrapped_data_key": wrap(kek, secrets.token_bytes(KEY_BYTES),
                                     DATA_KEY_LABEL + tenant),
            "wrapped_index_key": wrap(kek, secrets.token_bytes(KEY_BYTES),
                                      INDEX_KEY_LABEL + tenant),
            "created_at": datetime.now(UTC),
            "kek_version": version,
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert_if_absent(conn.dialect.name, values))

    async def _unwrap(self, tenant_id: str, wrapped: _WrappedKeys) -> TenantKeys:
        tenant = tenant_id.encode()
        what = f"the keys of tenant {tenant_id!r}"
        if wrapped.kek_version is None:
            data = self.master_unwrap(wrapped.data_key, DATA_KEY_LABEL + tenant, what=what)
            index = self.master_unwrap(wrapped.index_key, INDEX_KEY_LABEL + tenant, what=what)
        else:
            kek = await self.kek(tenant_id, wrapped.kek_version)
            data = unwrap(kek, wrapped.data_key, DATA_KEY_LABEL + tenant, what=what)
            index = unwrap(kek, wrapped.index_key, INDEX_KEY_LABEL + tenant, what=what)
        return TenantKeys(tenant_id, data, index, key_version=wrapped.key_version,
                          subjects=SubjectKeyring(self, tenant_id,
                                                  cache_size=self._subject_cache_size,
                                                  pool_batch=self._subject_pool_batch))


async def load_keys(settings: Settings, keyrings: Iterable[str]) -> dict[str, TenantKeys]:
    """The keys of each keyring, from a vault opened and closed for this call alone
    (a data migration, which runs apart from any runtime)."""
    vault = await Vault.open(settings)
    try:
        return {name: await vault.keys_for(name) for name in keyrings}
    finally:
        await vault.close()


async def latest_erasure(engine: AsyncEngine) -> int:
    """The ledger's last sequence number (0 when empty)."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.coalesce(
            func.max(erasure_ledger_table.c.seq), 0))) or 0)
