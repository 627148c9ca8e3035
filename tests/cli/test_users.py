"""``tidings users create``: the user and its temporary password, printed once; bad
input refused with the API's codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tidings.cli.main import cli


def test_users_create_prints_the_user_with_its_temporary_password_once(tmp_path: Path) -> None:
    env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
           "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    account = json.loads(CliRunner().invoke(
        cli, ["accounts", "create", "--name", "Acme", "--json"], env=env).output)["id"]
    args = ["users", "create", "--account", account, "--email", "ann@example.com",
            "--role", "owner", "--json"]
    made = json.loads(CliRunner().invoke(cli, args, env=env).output)
    assert {"id", "email", "role", "temporary_password", "expires_at"} <= made.keys()
    assert (made["email"], made["role"]) == ("ann@example.com", "owner")
    again = CliRunner().invoke(cli, args, env=env)
    assert again.exit_code == 1
    assert "email_taken" in again.output
    assert made["temporary_password"] not in again.output
    wrong = CliRunner().invoke(cli, [*args[:-3], "--role", "root"], env=env)
    assert (wrong.exit_code, "unknown_role" in wrong.output) == (1, True)
