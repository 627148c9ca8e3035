"""One tenant's data-subject keys: a pool of keys made ahead, and a cache of those in use.

A send needs each recipient's key before it encrypts, and a key must be durable in the
key store before any ciphertext under it is. Making a key on the send path would cost
a key-store transaction per new recipient (measured: the instructions of a single send
to a new number went from 2.8 M to 8.4 M, ``bench/cpu_per_send.py --callgrind``).
Instead each process keeps a pool of keys it made ahead, ``pool_batch`` at a time in one
key-store transaction, off the send path; a send to a new person takes one from the pool
and the message stored under it names both the key and the person's blind index
(``tidings.privacy.subjects``). Keys in use are cached (up to ``cache_size`` a
tenant, oldest dropped first), so a send to someone seen recently touches neither store.

A pool key never bound (the process stopped before using it) is a random key under
which nothing was written; ``discard_pool`` deletes them at a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, insert, select

from tidings.storage.ciphers import (
    KEY_BYTES,
    FieldCipher,
    SubjectKey,
    TenantKeys,
    VaultError,
    length_prefixed,
    unwrap,
    wrap,
)
from tidings.storage.keystore import subject_keys_table

if TYPE_CHECKING:
    from tidings.storage.vault import Vault

__all__ = ["SubjectKeyring", "ciphers_of", "new_key_id", "subject_key_aad"]

_TABLE = subject_keys_table
_CHUNK = 500  # keys a statement, under every database's parameter limit
_SUBJECT_KEY_LABEL = b"tidings-subject-key:"
POOL_BATCH = 256  # keys made in one key-store transaction, by default


class KeyedRow(Protocol):
    """A row with personal fields: its id, and the subject key they are under."""

    @property
    def id(self) -> str: ...

    @property
    def subject_key(self) -> str | None: ...


async def ciphers_of(keys: TenantKeys,
                     rows: Iterable[KeyedRow]) -> dict[str, FieldCipher | None]:
    """Each row's cipher by row id, in one look-up for all: its subject's key, the
    tenant's data key for a row written before subject keys (``subject_key`` NULL), or
    ``None`` when the subject was erased."""
    rows = list(rows)
    key_ids = {row.subject_key for row in rows if row.subject_key is not None}
    found: dict[str, SubjectKey] = {}
    if key_ids:
        if keys.subjects is None:
            raise VaultError(f"the keys of {keys.tenant_id!r} have no subject keyring")
        found = await keys.subjects.by_ids(key_ids)
    return {row.id: keys if row.subject_key is None else found.get(row.subject_key)
            for row in rows}


def new_key_id() -> str:
    """Random, so that the id a row carries says nothing about whom it is about."""
    return "sk_" + secrets.token_hex(16)


def subject_key_aad(tenant_id: str, key_id: str) -> bytes:
    """What a wrapped subject key is bound to: it unwraps for no other tenant or id."""
    return _SUBJECT_KEY_LABEL + length_prefixed(tenant_id, key_id)


class SubjectKeyring:
    """The subject keys of one tenant, for the tenant's ``TenantKeys.subjects``."""

    def __init__(self, vault: Vault, tenant_id: str, *, cache_size: int,
                 pool_batch: int = POOL_BATCH) -> None:
        self._vault = vault
        self.tenant_id = tenant_id
        self._cache_size = cache_size
        self._pool_batch = pool_batch
        # Fewer left than this: the next batch is made in the background, before any
        # send finds the pool empty and waits for it.
        self._pool_low = max(1, pool_batch // 4)
        self._by_id: dict[str, SubjectKey] = {}  # in insertion order: the oldest goes first
        self._by_index: dict[str, SubjectKey] = {}
        self._pool: list[SubjectKey] = []
        self._filling: asyncio.Task[None] | None = None
        self._fill_lock = asyncio.Lock()  # one batch at a time

    # ------------------------------------------------------------------ the send path

    def cached(self, index: str) -> SubjectKey | None:
        """The key in use for the subject with blind index ``index``, if this process
        has it at hand."""
        return self._by_index.get(index)

    async def fresh(self, indexes: Sequence[str]) -> list[SubjectKey]:
        """A key from the pool for each of these new subjects, cached as theirs; durable
        in the key store already. More than the pool holds are made in one batch."""
        while len(self._pool) < len(indexes):
            await self._fill(len(indexes))
        taken = [self._remember(self._pool.pop(), index) for index in indexes]
        if len(self._pool) < self._pool_low and self._filling is None:
            self._filling = asyncio.create_task(self._fill_in_background())
        return taken

    # ------------------------------------------------------------------ reading

    async def by_ids(self, key_ids: Iterable[str]) -> dict[str, SubjectKey]:
        """The keys named in rows; an erased subject's id is simply absent."""
        wanted = set(key_ids)
        out = {key_id: key for key_id in wanted if (key := self._by_id.get(key_id))}
        missing = list(wanted - out.keys())
        if missing:
            async with self._vault.keystore.connect() as conn:
                for start in range(0, len(missing), _CHUNK):
                    rows = (await conn.execute(select(
                        _TABLE.c.key_id, _TABLE.c.kek_version, _TABLE.c.wrapped_key,
                    ).where(_TABLE.c.tenant_id == self.tenant_id,
                            _TABLE.c.key_id.in_(missing[start:start + _CHUNK])))).all()
                    for row in rows:
                        out[row.key_id] = await self._unwrap(row)
        return out

    # ------------------------------------------------------------------ erasure

    def forget(self, key_id: str) -> None:
        """Drop and revoke a destroyed key, so nothing in this process uses it again."""
        key = self._by_id.pop(key_id, None)
        if key is not None:
            if self._by_index.get(key.index) is key:
                del self._by_index[key.index]
            key._revoke()

    def forget_all(self) -> None:
        for key_id in list(self._by_id):
            self.forget(key_id)
        for key in self._pool:
            key._revoke()
        self._pool.clear()

    async def discard_pool(self) -> None:
        """Delete the pool's unused keys from the key store (a clean stop)."""
        if self._filling is not None:
            self._filling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._filling
        unused = [key.key_id for key in self._pool]
        self._pool.clear()
        async with self._vault.keystore.begin() as conn:
            for start in range(0, len(unused), _CHUNK):
                await conn.execute(delete(_TABLE).where(
                    _TABLE.c.key_id.in_(unused[start:start + _CHUNK])))

    # ------------------------------------------------------------------ the pool

    async def _fill_in_background(self) -> None:
        try:
            await self._fill()
        except Exception:  # noqa: S110 - the next ``fresh`` that finds it empty raises it
            pass
        finally:
            self._filling = None

    async def _fill(self, wanted: int = 0) -> None:
        """New keys, durable in the key store, into the pool: a batch, or as many as a
        caller wants at once (unless a batch made meanwhile left enough)."""
        async with self._fill_lock:
            if len(self._pool) >= max(self._pool_low, wanted):
                return
            await self._make_batch(max(self._pool_batch, wanted - len(self._pool)))

    async def _make_batch(self, count: int) -> None:
        version, kek = await self._vault.active_kek(self.tenant_id)
        now, made, rows = datetime.now(UTC), [], []
        for _ in range(count):
            key_id, data_key = new_key_id(), secrets.token_bytes(KEY_BYTES)
            rows.append({"key_id": key_id, "tenant_id": self.tenant_id, "kek_version": version,
                         "created_at": now, "wrapped_key": wrap(
                             kek, data_key, subject_key_aad(self.tenant_id, key_id))})
            made.append(SubjectKey(self.tenant_id, key_id, "", data_key))
        async with self._vault.keystore.begin() as conn:
            for start in range(0, len(rows), _CHUNK):
                await conn.execute(insert(_TABLE), rows[start:start + _CHUNK])
        self._pool.extend(made)

    # ------------------------------------------------------------------ plumbing

    async def _unwrap(self, row: Any) -> SubjectKey:
        known = self._by_id.get(row.key_id)
        if known is not None:
            return known
        kek = await self._vault.kek(self.tenant_id, row.kek_version)
        key_id: str = row.key_id
        data_key = unwrap(kek, bytes(row.wrapped_key), subject_key_aad(self.tenant_id, key_id),
                          what=f"the key of subject {key_id!r}")
        return self._remember(SubjectKey(self.tenant_id, key_id, "", data_key), None)

    def _remember(self, key: SubjectKey, index: str | None) -> SubjectKey:
        while key.key_id not in self._by_id and len(self._by_id) >= self._cache_size:
            oldest = self._by_id.pop(next(iter(self._by_id)))
            if self._by_index.get(oldest.index) is oldest:  # not revoked: a sender may hold it
                del self._by_index[oldest.index]
        self._by_id[key.key_id] = key
        if index:
            key.index = index
            self._by_index[index] = key
        return key
