"""A command that reads the database refuses, naming the path and the settings, when
the database is not there, instead of making an empty one (run from another folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli.main import cli

READERS = [
    ("accounts", "list"),
    ("keys", "create", "--account", "acc_x"),
    ("connectors", "list"),
    ("routes", "list"),
    ("operator-keys", "list"),
    ("smpp-credentials", "list", "--account", "acc_x"),
    ("sandbox", "inbound", "--from", "+12025550111", "--to", "+12025550122", "--body", "hi"),
    ("audit", "verify"),
]


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_command_without_a_database_says_so_and_creates_nothing(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    data_dir = tmp_path / "elsewhere" / "data"
    result = CliRunner().invoke(cli, list(args), env={
        "TIDINGS_DATA_DIR": str(data_dir), "TIDINGS_DATABASE_URL": None,
        "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None})
    assert result.exit_code == 1, result.output
    assert f"no database at {data_dir / 'tidings.db'}" in result.output
    assert "TIDINGS_DATA_DIR" in result.output
    assert "TIDINGS_DATABASE_URL" in result.output
    assert not (tmp_path / "elsewhere").exists()


def test_migrate_makes_the_database_the_others_then_use(tmp_path: Path) -> None:
    env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
           "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["accounts", "list"], env=env)
    assert result.exit_code == 0, result.output
    assert "no accounts" in result.output

