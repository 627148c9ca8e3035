"""Tidings' files on disk: private modes, and the keys in a folder apart from the data."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_tenant
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.runtime import close_runtime, open_runtime
from tidings.storage.files import make_storage_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most shells and service managers start a process with."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def sqlite_settings(data_dir: Path, **overrides: object) -> Settings:
    # Explicit values so a developer's TIDINGS_* environment cannot leak in.
    values: dict[str, object] = {"data_dir": data_dir, "database_url": "", "keystore_url": "",
                                 "master_key": "", "key_dir": None, "smpp_port": 0}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_a_fresh_start_makes_private_files_and_keeps_the_keys_apart(
        tmp_path: Path, usual_umask: None) -> None:
    data_dir = tmp_path / "srv" / "data"
    settings = sqlite_settings(data_dir)
    rt = await open_runtime(settings, clock=FakeClock(), start_background=False)
    try:
        await make_tenant(rt, "Acme")  # writes: the WAL and its shared memory exist now
        key_dir = tmp_path / "srv" / "data-keys"
        assert settings.resolved_key_dir() == key_dir
        data_files = {p.name for p in data_dir.iterdir()}
        assert {"tidings.db", "tidings.db-wal", "tidings.db-shm",
                "tidings.db.write-lock"} <= data_files
        assert not data_files & {"master.key", "keys.db"}  # a copy of data/ has no keys
        assert {"master.key", "keys.db"} <= {p.name for p in key_dir.iterdir()}
        for folder in (data_dir, key_dir):
            assert mode(folder) == 0o700, folder
            for path in folder.iterdir():
                if path.is_file():
                    assert mode(path) == 0o600, path
    finally:
        await close_runtime(rt)


def test_files_left_readable_by_an_earlier_version_are_narrowed(
        tmp_path: Path, usual_umask: None) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("tidings.db", "tidings.db-wal", "tidings.db-shm"):
        (data_dir / name).write_bytes(b"")
        (data_dir / name).chmod(0o644)
    make_storage_private(sqlite_settings(data_dir))
    assert {mode(data_dir / n) for n in ("tidings.db", "tidings.db-wal", "tidings.db-shm")} == {
        0o600}


def test_the_key_folder_setting_and_keys_an_earlier_version_kept_in_the_data(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    chosen = tmp_path / "secrets" / "tidings"
    assert sqlite_settings(data_dir, key_dir=chosen).resolved_key_dir() == chosen
    assert sqlite_settings(data_dir, key_dir=chosen).resolved_keystore_url().endswith(
        f"{chosen}/keys.db")
    assert not sqlite_settings(data_dir).keys_in_data_dir

    # An install that kept its master key in the data folder goes on finding it there.
    data_dir.mkdir()
    (data_dir / "master.key").write_text("")
    legacy = sqlite_settings(data_dir)
    assert legacy.resolved_key_dir() == data_dir
    assert legacy.keys_in_data_dir
