"""Rotating a tenant's key-encryption key: every key under it re-wrapped, no data touched.

1. A new KEK version becomes ``active`` and the old one ``retired``, in one transaction:
   from then on new keys are wrapped under the new one, in every process (key creation
   reads the active version from the key store each time).
2. The tenant's data and index keys and its subjects' keys are re-wrapped under the new
   version, a chunk a transaction; each row is moved only if it is still under the
   version it was read under, so a crash or a second rotation at the same moment loses
   nothing and the rotation can simply be run again.
3. Retired versions that no row uses any more are destroyed. A row another process
   wrapped under the old version in the instant of step 1 keeps that version alive;
   step 2 runs again for it.

The ciphertexts in the application database never change: they are under the data and
subject keys, which stay the same; only their wrapping changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, exists, func, select, union, update

from tidings.storage.ciphers import VaultError, unwrap, wrap
from tidings.storage.keystore import kek_table, subject_keys_table, tenant_keys_table
from tidings.storage.subject_keys import subject_key_aad
from tidings.storage.vault import ACTIVE, DATA_KEY_LABEL, INDEX_KEY_LABEL, RETIRED, Vault

__all__ = ["Rotation", "keyrings", "rotate_kek"]

_CHUNK = 1000
_PASSES = 5  # step 2 again for stragglers, at most this often
# A process that read the old version just before step 1 may still be inserting a key
# under it: nothing older is destroyed until this has passed (key creation takes
# milliseconds between reading the active version and writing).
SETTLE_SECONDS = 2.0


@dataclass
class Rotation:
    """What one tenant's rotation did: for the command's report."""

    tenant_id: str
    active: int
    rewrapped: int = 0
    destroyed: list[int] = field(default_factory=list)


async def keyrings(vault: Vault) -> list[str]:
    """Every tenant (and the platform's keyring) that has keys in the key store."""
    query = union(select(tenant_keys_table.c.tenant_id), select(kek_table.c.tenant_id))
    async with vault.keystore.connect() as conn:
        return sorted(row[0] for row in (await conn.execute(query)).all())


async def rotate_kek(vault: Vault, tenant_id: str, *,
                     progress: Callable[[int], None] | None = None,
                     settle_seconds: float = SETTLE_SECONDS) -> Rotation:
    """Rotate ``tenant_id``'s KEK; ``progress`` hears the running count of re-wrapped keys."""
    old = await _current_version(vault, tenant_id)
    new = old + 1
    await _activate(vault, tenant_id, new)
    await asyncio.sleep(settle_seconds)
    report = Rotation(tenant_id, new)
    for _ in range(_PASSES):
        report.rewrapped += await _rewrap_tenant_keys(vault, tenant_id, new)
        report.rewrapped += await _rewrap_subject_keys(vault, tenant_id, new, report, progress)
        report.destroyed += await _destroy_unused(vault, tenant_id)
        if not await _still_retired(vault, tenant_id):
            return report
    raise VaultError(f"keys of tenant {tenant_id!r} kept appearing under a retired "
                     "key-encryption key; run the rotation again")


async def _current_version(vault: Vault, tenant_id: str) -> int:
    async with vault.keystore.connect() as conn:
        known = await conn.scalar(select(func.max(kek_table.c.version)).where(
            kek_table.c.tenant_id == tenant_id))
        has_keys = await conn.scalar(select(tenant_keys_table.c.tenant_id).where(
            tenant_keys_table.c.tenant_id == tenant_id))
    if known is None and has_keys is None:
        raise VaultError(f"tenant {tenant_id!r} has no keys to rotate")
    return int(known or 0)  # 0: keys wrapped by the master key, from before KEKs


async def _activate(vault: Vault, tenant_id: str, version: int) -> None:
    """The new version active and the others retired, in one transaction."""
    await vault.insert_kek(tenant_id, version)
    async with vault.keystore.begin() as conn:
        await conn.execute(update(kek_table).where(
            kek_table.c.tenant_id == tenant_id, kek_table.c.version != version,
            kek_table.c.state == ACTIVE).values(state=RETIRED, retired_at=datetime.now(UTC)))


async def _rewrap_tenant_keys(vault: Vault, tenant_id: str, new: int) -> int:
    table = tenant_keys_table
    async with vault.keystore.connect() as conn:
        row = (await conn.execute(select(
            table.c.wrapped_data_key, table.c.wrapped_index_key, table.c.kek_version,
        ).where(table.c.tenant_id == tenant_id,
                (table.c.kek_version != new) | table.c.kek_version.is_(None)))).first()
    if row is None:
        return 0
    tenant, what = tenant_id.encode(), f"the keys of tenant {tenant_id!r}"
    old_version = row.kek_version
    keys = []
    for wrapped, label in ((row.wrapped_data_key, DATA_KEY_LABEL),
                           (row.wrapped_index_key, INDEX_KEY_LABEL)):
        if old_version is None:
            keys.append(vault.master_unwrap(bytes(wrapped), label + tenant, what=what))
        else:
            keys.append(unwrap(await vault.kek(tenant_id, old_version), bytes(wrapped),
                               label + tenant, what=what))
    kek = await vault.kek(tenant_id, new)
    same_version = (table.c.kek_version.is_(None) if old_version is None
                    else table.c.kek_version == old_version)
    async with vault.keystore.begin() as conn:
        moved = await conn.execute(update(table).where(
            table.c.tenant_id == tenant_id, same_version).values(
            wrapped_data_key=wrap(kek, keys[0], DATA_KEY_LABEL + tenant),
            wrapped_index_key=wrap(kek, keys[1], INDEX_KEY_LABEL + tenant),
            kek_version=new))
    return int(moved.rowcount or 0)


async def _rewrap_subject_keys(vault: Vault, tenant_id: str, new: int, report: Rotation,
                               progress: Callable[[int], None] | None) -> int:
    table, done, after = subject_keys_table, 0, ""
    kek = await vault.kek(tenant_id, new)
    while True:
        async with vault.keystore.connect() as conn:
            rows = (await conn.execute(select(
                table.c.key_id, table.c.kek_version, table.c.wrapped_key,
            ).where(table.c.tenant_id == tenant_id, table.c.kek_version != new,
                    table.c.key_id > after).order_by(table.c.key_id).limit(_CHUNK))).all()
        if not rows:
            return done
        async with vault.keystore.begin() as conn:
            for row in rows:
                aad = subject_key_aad(tenant_id, row.key_id)
                key = unwrap(await vault.kek(tenant_id, row.kek_version), bytes(row.wrapped_key),
                             aad, what=f"the key of subject {row.key_id!r}")
                moved = await conn.execute(update(table).where(
                    table.c.key_id == row.key_id, table.c.kek_version == row.kek_version,
                ).values(wrapped_key=wrap(kek, key, aad), kek_version=new))
                done += int(moved.rowcount or 0)
        after = rows[-1].key_id
        if progress is not None:
            progress(report.rewrapped + done)


async def _destroy_unused(vault: Vault, tenant_id: str) -> list[int]:
    """Delete the retired versions no key is wrapped under any more."""
    keks, subjects, tenants = kek_table, subject_keys_table, tenant_keys_table
    unused = (
        (keks.c.tenant_id == tenant_id) & (keks.c.state == RETIRED)
        & ~exists().where(subjects.c.tenant_id == tenant_id,
                          subjects.c.kek_version == keks.c.version)
        & ~exists().where(tenants.c.tenant_id == tenant_id,
                          tenants.c.kek_version == keks.c.version))
    async with vault.keystore.begin() as conn:
        versions = [row[0] for row in (await conn.execute(
            select(keks.c.version).where(unused))).all()]
        # The condition again in the delete itself: a key written since the select
        # keeps its version.
        await conn.execute(delete(keks).where(unused, keks.c.version.in_(versions)))
    for version in versions:
        vault.forget_kek(tenant_id, version)
    return versions


async def _still_retired(vault: Vault, tenant_id: str) -> bool:
    async with vault.keystore.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(kek_table).where(
            kek_table.c.tenant_id == tenant_id, kek_table.c.state == RETIRED)) != 0
