"""The key store's hierarchy below the master key: a KEK per tenant, a data key per data
subject made in groups and agreed on by racing processes, rows from before KEKs still
read and moved under one by rotation; on SQLite and on a PostgreSQL key store."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event, select

from tidings.core.settings import Settings
from tidings.privacy.subjects import subjects_for
from tidings.storage import kek_rotation
from tidings.storage.ciphers import SubjectKey, VaultError, wrap
from tidings.storage.kek_rotation import keyrings, rotate_kek
from tidings.storage.keystore import insert_if_absent, subject_keys_table
from tidings.storage.subject_keys import (
    POOL_BATCH,
    SubjectKeyring,
    new_key_id,
    subject_key_aad,
)
from tidings.storage.vault import DATA_KEY_LABEL, INDEX_KEY_LABEL, Vault, load_master_key


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "key_dir": tmp_path / "keys",
                              "master_key": "", "keystore_url": "",
                              "subject_key_cache_size": 1000}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return make_settings(tmp_path)
    url = os.environ.get("TIDINGS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    return make_settings(tmp_path, keystore_url=url)


@pytest.fixture
async def vault(settings: Settings) -> AsyncIterator[Vault]:
    v = await Vault.open(settings)
    yield v
    await v.close()


def tenant() -> str:
    return f"test-{uuid.uuid4()}"  # the PostgreSQL key store is shared between runs


async def one(ring: SubjectKeyring | None, index: str) -> SubjectKey:
    """A new person's key, as a single send takes it."""
    assert ring is not None
    [key] = await ring.fresh([index])
    return key


def count_inserts(vault: Vault) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SUBJECT_KEYS"):
            seen.append(statement)
    event.listen(vault.keystore.sync_engine, "before_cursor_execute", before)
    return seen


async def test_keys_for_new_people_come_from_a_pool_made_in_one_write(vault: Vault) -> None:
    keys = await vault.keys_for(tenant())
    assert keys.subjects is not None
    inserts = count_inserts(vault)
    made = await asyncio.gather(*(one(keys.subjects, f"index-{n}") for n in range(50)))
    assert len({k.key_id for k in made}) == 50
    assert len(inserts) == 1  # one statement for a batch of the pool, not fifty
    assert [keys.subjects.cached(f"index-{n}") for n in range(50)] == made


async def test_a_batch_to_many_new_people_makes_their_keys_in_one_write(vault: Vault) -> None:
    keys = await vault.keys_for(tenant())
    inserts = count_inserts(vault)
    addresses = [f"+1202555{n:04d}" for n in range(1000)]
    made = await subjects_for(keys, [*addresses, addresses[0]])  # one person twice
    assert len({k.key_id for k in made}) == 1000
    assert made[0] is made[-1]
    assert len(inserts) == 2  # one transaction, in chunks of 500 rows a statement
    assert await subjects_for(keys, addresses) == made[:-1]  # known now: nothing written
    assert len(inserts) == 2


async def test_the_pool_refills_before_it_runs_dry(vault: Vault) -> None:
    keys = await vault.keys_for(tenant())
    assert keys.subjects is not None
    inserts = count_inserts(vault)
    for n in range(POOL_BATCH - 1):
        await one(keys.subjects, f"i{n}")
    filling = keys.subjects._filling  # started when the pool ran low, before it ran dry
    assert filling is not None
    await filling
    assert len(inserts) == 2
    for n in range(POOL_BATCH - 1, POOL_BATCH + 10):  # no send waits on the key store
        await one(keys.subjects, f"i{n}")
    assert len(inserts) == 2


async def test_unused_pool_keys_are_deleted_at_a_clean_stop(settings: Settings) -> None:
    vault = await Vault.open(settings)
    name = tenant()
    keys = await vault.keys_for(name)
    assert keys.subjects is not None
    used = await one(keys.subjects, "someone")
    await vault.close()
    reopened = await Vault.open(settings)
    try:
        async with reopened.keystore.connect() as conn:
            left = (await conn.execute(select(subject_keys_table.c.key_id).where(
                subject_keys_table.c.tenant_id == name))).scalars().all()
        assert left == [used.key_id]
    finally:
        await reopened.close()


async def test_every_process_reads_the_keys_another_made(settings: Settings) -> None:
    first, second = await Vault.open(settings), await Vault.open(settings)
    name = tenant()
    try:
        a, b = await first.keys_for(name), await second.keys_for(name)
        assert a.subjects is not None
        assert b.subjects is not None
        made = await one(a.subjects, "someone")
        blob = made.encrypt("+12025550173", field="messages.to")
        found = await b.subjects.by_ids([made.key_id, "sk_unknown"])
        assert list(found) == [made.key_id]
        assert found[made.key_id].decrypt(blob, field="messages.to") == "+12025550173"
    finally:
        await first.close()
        await second.close()


async def test_a_small_cache_forgets_the_oldest_and_reads_them_again(settings: Settings) -> None:
    vault = await Vault.open(settings.model_copy(update={"subject_key_cache_size": 3}))
    try:
        keys = await vault.keys_for(tenant())
        assert keys.subjects is not None
        made = [await one(keys.subjects, f"i{n}") for n in range(5)]
        assert len(keys.subjects._by_id) == 3  # the two oldest were let go
        assert keys.subjects.cached("i0") is None
        blob = made[0].encrypt("x", field="f")
        found = await keys.subjects.by_ids([made[0].key_id])
        assert found[made[0].key_id].decrypt(blob, field="f") == "x"
    finally:
        await vault.close()


async def test_a_subject_key_is_wrapped_for_its_tenant_only(vault: Vault) -> None:
    keys = await vault.keys_for(tenant())
    assert keys.subjects is not None
    key = await one(keys.subjects, "someone")
    other = await vault.keys_for(tenant())
    assert other.subjects is not None
    async with vault.keystore.begin() as conn:  # moved to another tenant's name
        await conn.execute(subject_keys_table.update().where(
            subject_keys_table.c.key_id == key.key_id).values(tenant_id=other.tenant_id))
    with pytest.raises(VaultError, match="cannot unwrap"):
        await other.subjects.by_ids([key.key_id])


async def test_keys_from_before_keks_still_open_and_rotation_moves_them(
        vault: Vault, settings: Settings) -> None:
    """A tenant_keys row an earlier version wrote (wrapped by the master key itself)."""
    name = tenant()
    master = AESGCM(load_master_key(settings))
    data_key, index_key = secrets.token_bytes(32), secrets.token_bytes(32)

    def wrapped(key: bytes, label: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + master.encrypt(nonce, key, label + name.encode())
    async with vault.keystore.begin() as conn:
        await conn.execute(insert_if_absent(conn.dialect.name, {
            "tenant_id": name, "key_version": 1, "created_at": datetime.now(UTC),
            "wrapped_data_key": wrapped(data_key, DATA_KEY_LABEL),
            "wrapped_index_key": wrapped(index_key, INDEX_KEY_LABEL), "kek_version": None}))
    keys = await vault.keys_for(name)
    blob = keys.encrypt("Zoë", field="f")
    assert name in await keyrings(vault)

    done = await rotate_kek(vault, name, settle_seconds=0)

    assert (done.active, done.rewrapped, done.destroyed) == (1, 1, [])
    fresh = await Vault.open(settings)
    try:
        assert (await fresh.keys_for(name)).decrypt(blob, field="f") == "Zoë"
    finally:
        await fresh.close()


async def test_rotation_refuses_a_tenant_without_keys(vault: Vault) -> None:
    with pytest.raises(VaultError, match="no keys to rotate"):
        await rotate_kek(vault, tenant(), settle_seconds=0)


async def test_a_key_written_under_the_old_kek_during_rotation_is_moved_too(
        vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may wrap a new key under the old version in the instant of the
    switch: the rotation finds it, re-wraps it, and destroys the old version only then."""
    name = tenant()
    keys = await vault.keys_for(name)
    assert keys.subjects is not None
    await one(keys.subjects, "early")
    old_version, old_kek = await vault.active_kek(name)
    late_id, late_key = new_key_id(), secrets.token_bytes(32)
    real_rewrap = kek_rotation._rewrap_subject_keys
    calls = 0

    async def straggler_then_rewrap(*args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # written under the old version after the switch
            async with vault.keystore.begin() as conn:
                await conn.execute(insert_if_absent(conn.dialect.name, {
                    "tenant_id": name, "key_id": late_id,
                    "kek_version": old_version, "created_at": datetime.now(UTC),
                    "wrapped_key": wrap(old_kek, late_key, subject_key_aad(name, late_id))},
                    subject_keys_table))
        return await real_rewrap(*args)
    monkeypatch.setattr(kek_rotation, "_rewrap_subject_keys", straggler_then_rewrap)

    done = await rotate_kek(vault, name, settle_seconds=0)

    assert done.destroyed == [old_version]
    # The tenant's keys, the pool's batch, and "late" on the second pass.
    assert done.rewrapped == 1 + POOL_BATCH + 1
    found = await keys.subjects.by_ids([late_id])
    blob = found[late_id].encrypt("x", field="f")
    # Still the very key that was written: only its wrapping changed.
    assert SubjectKey(name, late_id, "late", late_key).decrypt(blob, field="f") == "x"
