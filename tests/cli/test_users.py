"""``tidings users create`` and ``list``: the user and its temporary password, printed
once, never listed; bad input refused with the API's codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli.main import cli

Env = dict[str, str | None]


@pytest.fixture
def acme(tmp_path: Path) -> tuple[Env, str]:
    """A migrated data folder of its own (the environment naming it) and an account in it."""
    env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
           "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    account = json.loads(CliRunner().invoke(
        cli, ["accounts", "create", "--name", "Acme", "--json"], env=env).output)["id"]
    return env, account


def test_users_create_prints_the_user_with_its_temporary_password_once(
        acme: tuple[Env, str]) -> None:
    env, account = acme
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


def test_users_list_shows_the_accounts_users_without_their_passwords(acme: tuple[Env, str]) -> None:
    env, account = acme
    empty = CliRunner().invoke(cli, ["users", "list", "--account", account], env=env)
    assert (empty.exit_code, empty.output.strip()) == (0, "no users")
    made = json.loads(CliRunner().invoke(cli, [
        "users", "create", "--account", account, "--email", "ann@example.com",
        "--role", "admin", "--json"], env=env).output)
    listed = CliRunner().invoke(cli, ["users", "list", "--account", account, "--json"], env=env)
    [user] = json.loads(listed.output)
    assert (user["id"], user["email"], user["role"]) == (made["id"], "ann@example.com", "admin")
    assert made["temporary_password"] not in listed.output
    unknown = CliRunner().invoke(cli, ["users", "list", "--account", "acc_nope"], env=env)
    assert (unknown.exit_code, "account_not_found" in unknown.output) == (1, True)


def test_users_create_makes_operator_staff_with_operator_only(acme: tuple[Env, str]) -> None:
    env, account = acme
    staff = CliRunner().invoke(cli, ["users", "create", "--operator", "--email",
                                     "ops@example.com", "--role", "operator", "--json"], env=env)
    assert staff.exit_code == 0, staff.output
    made = json.loads(staff.output)
    assert (made["account_id"], made["role"]) == (None, "operator")
    for args, expected in [
        (["--operator", "--account", account, "--role", "operator"], "either --account"),
        (["--role", "operator"], "either --account"),
        (["--operator", "--role", "owner"], "unknown_role"),
        (["--account", account, "--role", "operator"], "unknown_role"),
    ]:
        refused = CliRunner().invoke(cli, ["users", "create", "--email", "x@example.com",
                                           *args], env=env)
        assert refused.exit_code != 0, args
        assert expected in refused.output, (args, refused.output)
