"""The vault: field encryption, blind indexes, wrapped key storage, crypto-erasure."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tidings.core.settings import Settings
from tidings.storage.vault import PLATFORM_KEYRING, TenantKeys, Vault, VaultError, load_master_key

PHONE = "phone_number"
NAME = "display_name"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    # Explicit empty values so a developer's TIDINGS_* environment cannot leak in.
    values: dict[str, Any] = {"data_dir": data_dir, "key_dir": data_dir, "master_key": "",
                              "keystore_url": ""}
    values.update(overrides)
    return Settings(**values)


def b64key(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def vault(settings: Settings) -> AsyncIterator[Vault]:
    v = await Vault.open(settings)
    yield v
    await v.close()


def keystore_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "keys.db") as conn:
        return conn.execute(
            "SELECT tenant_id, key_version, wrapped_data_key, wrapped_index_key FROM tenant_keys"
        ).fetchall()


def unwrap(wrapping_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """The documented wrap format, independently of the vault: nonce || AES-GCM."""
    return AESGCM(wrapping_key).decrypt(wrapped[:12], wrapped[12:], aad)


# --------------------------------------------------------------------------- encryption


@pytest.mark.parametrize(
    "plaintext",
    ["", "hello", "+15551234567", "Zoë Ångström 日本語 👋🏽 👨‍👩‍👧", "x" * 300, "a\x00b\n"],
)
async def test_round_trip(vault: Vault, plaintext: str) -> None:
    keys = await vault.keys_for("tenant-a")
    assert keys.decrypt(keys.encrypt(plaintext, field=PHONE), field=PHONE) == plaintext


async def test_ciphertext_is_randomised_and_hides_the_plaintext(vault: Vault) -> None:
    keys = await vault.keys_for("tenant-a")
    plaintext = "+15551234567 Jane Example"
    first = keys.encrypt(plaintext, field=PHONE)
    second = keys.encrypt(plaintext, field=PHONE)
    assert first != second
    assert first[1:13] != second[1:13]  # fresh nonce each time
    for blob in (first, second):
        assert plaintext.encode() not in blob
        assert b"+15551234567" not in blob
        assert blob[0] == 1
        assert len(blob) == 1 + 12 + len(plaintext.encode()) + 16


async def test_tampering_with_any_byte_is_detected(vault: Vault) -> None:
    keys = await vault.keys_for("tenant-a")
    blob = keys.encrypt("+15551234567", field=PHONE)
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(VaultError):
            keys.decrypt(bytes(tampered), field=PHONE)


@pytest.mark.parametrize("cut", [0, 1, 13, 28])
async def test_truncated_ciphertext_is_rejected(vault: Vault, cut: int) -> None:
    keys = await vault.keys_for("tenant-a")
    blob = keys.encrypt("", field=PHONE)  # 29 bytes: the shortest valid blob
    with pytest.raises(VaultError):
        keys.decrypt(blob[:cut], field=PHONE)


async def test_other_tenant_or_field_cannot_decrypt(vault: Vault) -> None:
    a = await vault.keys_for("tenant-a")
    b = await vault.keys_for("tenant-b")
    blob = a.encrypt("+15551234567", field=PHONE)
    with pytest.raises(VaultError):
        b.decrypt(blob, field=PHONE)
    with pytest.raises(VaultError):
        a.decrypt(blob, field=NAME)


async def test_same_key_bytes_still_bind_the_tenant_id() -> None:
    # Even if two tenants somehow shared key bytes, the AAD keeps values apart.
    key, index_key = os.urandom(32), os.urandom(32)
    a, b = TenantKeys("a", key, index_key), TenantKeys("b", key, index_key)
    with pytest.raises(VaultError):
        b.decrypt(a.encrypt("secret", field=PHONE), field=PHONE)


async def test_optional_helpers_pass_none_through(vault: Vault) -> None:
    keys = await vault.keys_for("tenant-a")
    assert keys.encrypt_optional(None, field=NAME) is None
    assert keys.decrypt_optional(None, field=NAME) is None
    blob = keys.encrypt_optional("Jane", field=NAME)
    assert blob is not None
    assert keys.decrypt_optional(blob, field=NAME) == "Jane"


# --------------------------------------------------------------------------- blind index


async def test_blind_index_is_deterministic_per_tenant_and_field(vault: Vault) -> None:
    a = await vault.keys_for("tenant-a")
    b = await vault.keys_for("tenant-b")
    token = a.blind_index("+15551234567", field=PHONE)
    assert len(token) == 64
    assert int(token, 16) >= 0  # hex
    assert a.blind_index("+15551234567", field=PHONE) == token
    assert b.blind_index("+15551234567", field=PHONE) != token
    assert a.blind_index("+15551234567", field=NAME) != token
    assert a.blind_index("+15551234568", field=PHONE) != token
    assert "15551234567" not in token


# --------------------------------------------------------------------------- key storage


async def test_keys_are_cached_per_tenant(vault: Vault) -> None:
    assert await vault.keys_for("tenant-a") is await vault.keys_for("tenant-a")
    assert await vault.keys_for("tenant-a") is not await vault.keys_for("tenant-b")


async def test_empty_tenant_id_is_refused(vault: Vault) -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        await vault.keys_for("")


async def test_keys_persist_across_reopen(settings: Settings) -> None:
    vault = await Vault.open(settings)
    keys = await vault.keys_for("tenant-a")
    blob = keys.encrypt("+15551234567", field=PHONE)
    token = keys.blind_index("+15551234567", field=PHONE)
    await vault.close()

    reopened = await Vault.open(settings)
    try:
        again = await reopened.keys_for("tenant-a")
        assert again.decrypt(blob, field=PHONE) == "+15551234567"
        assert again.blind_index("+15551234567", field=PHONE) == token
    finally:
        await reopened.close()


async def test_key_store_holds_only_wrapped_keys(vault: Vault, settings: Settings) -> None:
    keys = await vault.keys_for("tenant-a")
    blob = keys.encrypt("+15551234567", field=PHONE)
    [(tenant_id, version, wrapped_data, wrapped_index)] = keystore_rows(settings.data_dir)
    assert (tenant_id, version) == ("tenant-a", 1)

    # master key -> the tenant's key-encryption key (version 1) -> its data and index keys
    master = load_master_key(settings)
    with sqlite3.connect(settings.data_dir / "keys.db") as conn:
        [(wrapped_kek,)] = conn.execute(
            "SELECT wrapped_key FROM tenant_keks WHERE tenant_id = 'tenant-a'").fetchall()
    conn.close()
    kek = unwrap(master, wrapped_kek,
                 b"tidings-tenant-kek:" + b"\0\0\0\x08tenant-a" + b"\0\0\0\x011")
    data_key = unwrap(kek, wrapped_data, b"tidings-tenant-key:tenant-a")
    index_key = unwrap(kek, wrapped_index, b"tidings-tenant-index-key:tenant-a")
    assert len(data_key) == len(index_key) == 32
    assert data_key != index_key

    # The unwrapped keys really are the tenant's keys ...
    assert TenantKeys("tenant-a", data_key, index_key).decrypt(blob, field=PHONE) == (
        "+15551234567"
    )
    expected = hmac.new(index_key, PHONE.encode() + b"\x00+15551234567", hashlib.sha256)
    assert keys.blind_index("+15551234567", field=PHONE) == expected.hexdigest()

    # ... and no file but the master key file contains them in the clear.
    for path in settings.data_dir.iterdir():
        if path.name != "master.key" and path.is_file():
            content = path.read_bytes()
            assert data_key not in content, path
            assert index_key not in content, path


async def test_wrong_master_key_cannot_unwrap(settings: Settings) -> None:
    vault = await Vault.open(settings)
    await vault.keys_for("tenant-a")
    await vault.close()

    wrong = await Vault.open(make_settings(settings.data_dir, master_key=b64key(os.urandom(32))))
    try:
        with pytest.raises(VaultError, match="master key"):
            await wrong.keys_for("tenant-a")
    finally:
        await wrong.close()


# --------------------------------------------------------------------------- master key


def test_master_key_file_is_created_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet"
    settings = make_settings(data_dir)
    key = load_master_key(settings)
    path = data_dir / "master.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text()) == key
    assert load_master_key(settings) == key  # read back, not regenerated
    assert [p.name for p in data_dir.iterdir()] == ["master.key"]  # no temp file left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_master_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    settings = make_settings(tmp_path)
    load_master_key(settings)
    (tmp_path / "master.key").chmod(mode)
    with pytest.raises(VaultError, match="chmod 600"):
        load_master_key(settings)


def test_corrupt_master_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(b64key(os.urandom(16)))
    path.chmod(0o600)
    with pytest.raises(VaultError, match="32 bytes"):
        load_master_key(make_settings(tmp_path))


@pytest.mark.parametrize(
    "encode",
    [
        base64.b64encode,
        base64.urlsafe_b64encode,
        lambda k: base64.urlsafe_b64encode(k).rstrip(b"="),  # unpadded
    ],
)
def test_master_key_setting_accepts_both_alphabets(tmp_path: Path, encode: Any) -> None:
    key = bytes([0xFB, 0xFF, 0xBF]) * 10 + b"\xfe\xff"  # encodes to '+', '/' or '-', '_'
    settings = make_settings(tmp_path, master_key=encode(key).decode())
    assert load_master_key(settings) == key
    assert not (tmp_path / "master.key").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!!", "not valid base64"),
        ("é" * 44, "not valid base64"),
        (b64key(bytes(range(16))), "exactly 32 bytes"),
        (b64key(bytes(range(33))), "exactly 32 bytes"),
    ],
)
def test_master_key_setting_must_be_32_bytes_of_base64(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        load_master_key(make_settings(tmp_path, master_key=value))
    assert value not in str(caught.value)  # the secret never lands in logs


# --------------------------------------------------------------------------- erasure


async def test_destroy_tenant_keys_erases_data(vault: Vault, settings: Settings) -> None:
    old = await vault.keys_for("tenant-a")
    other = await vault.keys_for("tenant-b")
    blob = old.encrypt("+15551234567", field=PHONE)
    token = old.blind_index("+15551234567", field=PHONE)
    wrapped_data, wrapped_index = next(
        row[2:] for row in keystore_rows(settings.data_dir) if row[0] == "tenant-a"
    )

    await vault.destroy_tenant_keys("tenant-a")

    # secure_delete: the old wrapped keys are overwritten in the file, not just unlinked.
    content = (settings.data_dir / "keys.db").read_bytes()
    assert wrapped_data not in content
    assert wrapped_index not in content

    with pytest.raises(VaultError, match="destroyed"):  # a stale reference is revoked
        old.decrypt(blob, field=PHONE)
    with pytest.raises(VaultError, match="destroyed"):
        old.blind_index("x", field=PHONE)
    new = await vault.keys_for("tenant-a")
    assert new is not old
    with pytest.raises(VaultError):
        new.decrypt(blob, field=PHONE)
    assert new.blind_index("+15551234567", field=PHONE) != token
    # Other tenants are untouched.
    assert other.decrypt(other.encrypt("ok", field=PHONE), field=PHONE) == "ok"


async def test_destroyed_keys_stay_destroyed_after_reopen(settings: Settings) -> None:
    vault = await Vault.open(settings)
    blob = (await vault.keys_for("tenant-a")).encrypt("Jane", field=NAME)
    await vault.destroy_tenant_keys("tenant-a")
    await vault.destroy_tenant_keys("never-existed")  # idempotent, no error
    await vault.close()

    reopened = await Vault.open(settings)
    try:
        with pytest.raises(VaultError):
            (await reopened.keys_for("tenant-a")).decrypt(blob, field=NAME)
    finally:
        await reopened.close()


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_first_use_creates_one_key(vault: Vault, settings: Settings) -> None:
    results = await asyncio.gather(*(vault.keys_for("tenant-new") for _ in range(20)))
    assert all(keys is results[0] for keys in results)
    assert len(keystore_rows(settings.data_dir)) == 1


async def test_racing_vaults_agree_on_one_key(settings: Settings) -> None:
    # Two Vault objects have separate locks, like two processes: only the
    # database's insert-if-absent keeps them from creating two keys.
    first, second = await Vault.open(settings), await Vault.open(settings)
    try:
        results = await asyncio.gather(
            *(v.keys_for("tenant-race") for _ in range(10) for v in (first, second))
        )
        blob = results[0].encrypt("+15551234567", field=PHONE)
        for keys in results:
            assert keys.decrypt(blob, field=PHONE) == "+15551234567"
        assert len(keystore_rows(settings.data_dir)) == 1
    finally:
        await first.close()
        await second.close()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
async def test_postgres_key_store(tmp_path: Path) -> None:
    url = os.environ.get("TIDINGS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    settings = make_settings(tmp_path, keystore_url=url)
    # Unique tenant ids: the table name is fixed, so runs share it without colliding.
    tenant, racer = f"test-{uuid.uuid4()}", f"test-{uuid.uuid4()}"
    first, second = await Vault.open(settings), await Vault.open(settings)
    try:
        blob = (await first.keys_for(tenant)).encrypt("Zoë 👋", field=NAME)
        raced = await asyncio.gather(
            *(v.keys_for(racer) for _ in range(10) for v in (first, second))
        )
        racer_blob = raced[0].encrypt("+15551234567", field=PHONE)
        assert all(k.decrypt(racer_blob, field=PHONE) == "+15551234567" for k in raced)
        await first.close()

        first = await Vault.open(settings)
        assert (await first.keys_for(tenant)).decrypt(blob, field=NAME) == "Zoë 👋"
        await first.destroy_tenant_keys(tenant)
        with pytest.raises(VaultError):
            (await first.keys_for(tenant)).decrypt(blob, field=NAME)
    finally:
        for tenant_id in (tenant, racer):
            await first.destroy_tenant_keys(tenant_id)
        await first.close()
        await second.close()


async def test_the_platform_index_key_lives_in_the_key_store(settings: Settings) -> None:
    """One index for every tenant, the same after a restart, and never in the database."""
    vault = await Vault.open(settings)
    try:
        platform = await vault.platform_keys()
        token = platform.blind_index("+12025550173", field=PHONE)
        tenant = await vault.keys_for("tenant-a")
        assert token != tenant.blind_index("+12025550173", field=PHONE)
    finally:
        await vault.close()
    with sqlite3.connect(settings.data_dir / "keys.db") as db:
        assert db.execute("SELECT count(*) FROM tenant_keys WHERE tenant_id = ?",
                          (PLATFORM_KEYRING,)).fetchone() == (1,)
    reopened = await Vault.open(settings)
    try:
        again = await reopened.platform_keys()
        assert again.blind_index("+12025550173", field=PHONE) == token
    finally:
        await reopened.close()
