"""``tidings privacy``: the operator forwards a person's request to the account that
controls their data, follows it, extends or refuses it, and keeps holds and
restrictions; garbage refused with the API's codes, changing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli.main import cli

Env = dict[str, str | None]
CANARY = "+12025550173"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    return env


def run(env: Env, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
def account(env: Env) -> str:
    code, out = run(env, "accounts", "create", "--name", "Acme", "--json")
    assert code == 0, out
    return str(json.loads(out)["id"])


def test_a_forwarded_request_is_listed_extended_and_rejected(env: Env, account: str) -> None:
    code, out = run(env, "privacy", "requests", "create", "--account", account, "--type",
                    "objection", "--number", CANARY, "--note", "By letter", "--json")
    assert code == 0, out
    made = json.loads(out)
    assert (made["source"], made["status"], made["subject"]) == (
        "operator", "received", {"number": CANARY})
    code, out = run(env, "privacy", "requests", "list", "--account", account, "--open")
    assert code == 0
    assert made["id"] in out
    assert "objection" in out
    code, out = run(env, "privacy", "requests", "extend", "--account", account, made["id"],
                    "--months", "2", "--reason", "Archive to search", "--json")
    assert code == 0, out
    assert json.loads(out)["extension_reason"] == "Archive to search"
    code, out = run(env, "privacy", "requests", "reject", "--account", account, made["id"],
                    "--reason", "Identity not established")
    assert code == 0
    assert "rejected" in out
    code, out = run(env, "privacy", "requests", "show", "--account", account, made["id"])
    assert code == 0
    assert "Identity not established" in out


def test_holds_and_restrictions(env: Env, account: str) -> None:
    code, out = run(env, "privacy", "holds", "place", "--account", account, "--number", CANARY,
                    "--basis", "Claim 17", "--json")
    assert code == 0, out
    hold = json.loads(out)["id"]
    code, out = run(env, "privacy", "holds", "list", "--account", account)
    assert code == 0
    assert "in force" in out
    assert "Claim 17" in out
    assert run(env, "privacy", "holds", "release", "--account", account, hold)[0] == 0
    code, out = run(env, "privacy", "holds", "release", "--account", account, hold)
    assert code == 1
    assert "hold_released" in out
    code, out = run(env, "privacy", "restrictions", "list", "--account", account)
    assert (code, out) == (0, "No restrictions.\n")
    code, out = run(env, "privacy", "restrictions", "lift", "--account", account, "rst_nope")
    assert code == 1
    assert "restriction_not_found" in out


def test_a_bundle_not_ready_is_refused_and_no_file_is_written(env: Env, account: str,
                                                               tmp_path: Path) -> None:
    code, out = run(env, "privacy", "requests", "create", "--account", account, "--type",
                    "access", "--email", "canary@example.test", "--json")
    assert code == 0, out
    target = tmp_path / "bundle.json"
    code, out = run(env, "privacy", "requests", "bundle", "--account", account,
                    json.loads(out)["id"], "-o", str(target))
    assert code == 1
    assert "bundle_not_ready" in out
    assert not target.exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["requests", "create", "--type", "erasure"], "invalid_subject"),
    (["requests", "create", "--type", "erasure", "--number", "12"], "invalid"),
    (["requests", "create", "--type", "erasure", "--number", CANARY, "--email", "a@b.example"],
     "invalid_subject"),
    (["requests", "create", "--type", "forget", "--number", CANARY], "Invalid value"),
    (["requests", "create", "--type", "rectification", "--number", CANARY],
     "rectify_to_missing"),
    (["requests", "extend", "dsr_nope", "--months", "1", "--reason", "x"],
     "privacy_request_not_found"),
    (["requests", "extend", "dsr_nope", "--months", "5", "--reason", "x"], "Invalid value"),
    (["requests", "reject", "dsr_nope", "--reason", " "], "privacy_request_not_found"),
    (["holds", "place", "--number", CANARY, "--basis", " "], "basis_missing"),
])
def test_garbage_is_refused_and_changes_nothing(env: Env, account: str, args: list[str],
                                                expected: str) -> None:
    code, out = run(env, "privacy", *args[:2], "--account", account, *args[2:])
    assert code in (1, 2), out
    assert expected in out
    assert "Traceback" not in out
    assert run(env, "privacy", "requests", "list", "--account", account) == (
        0, "No requests.\n")
    assert run(env, "privacy", "holds", "list", "--account", account) == (
        0, "No legal holds.\n")


def test_another_account_is_not_found(env: Env) -> None:
    code, out = run(env, "privacy", "requests", "create", "--account", "acc_nobody",
                    "--type", "access", "--number", CANARY)
    assert code == 1
    assert "account_not_found" in out


def test_retention_is_shown_chosen_within_limits_and_run(env: Env, account: str) -> None:
    code, out = run(env, "privacy", "retention", "show", "--account", account)
    assert (code, out) == (0, "90 days (the default; limits 1..730)\n")
    code, out = run(env, "privacy", "retention", "set", "--account", account, "--days", "800")
    assert code == 1
    assert "retention_out_of_limits" in out
    code, out = run(env, "privacy", "retention", "set", "--account", account)
    assert code == 2
    assert "--days N or --default" in out
    code, out = run(env, "privacy", "retention", "set", "--account", account, "--days", "30")
    assert (code, out) == (0, "30 days (chosen; limits 1..730)\n")
    code, out = run(env, "privacy", "retention", "run", "--account", account, "--json")
    assert code == 0, out
    assert json.loads(out)["messages"] == 0
    code, out = run(env, "privacy", "retention", "show", "--account", account)
    assert "0 messages anonymised, 0 keys destroyed" in out
    code, out = run(env, "privacy", "retention", "run", "--account", "acc_nobody")
    assert code == 1
    assert "account_not_found" in out
