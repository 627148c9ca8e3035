"""``tidings privacy subprocessors`` and ``tidings connectors set-subprocessor``: the
operator records an entry, notifies clients thirty days or more ahead, lists the
notices and retires it; garbage refused with the API's codes, changing nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli.main import cli

Env = dict[str, str | None]
ENTRY = ["--legal-name", "Northwind Carrier Ltd", "--country", "GB", "--country", "IE",
         "--purpose", "Carries SMS in the UK and Ireland.",
         "--category", "user.contact.phone_number", "--transfer", "adequacy",
         "--security", "ISO 27001 certified."]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    return env


def run(env: Env, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def days_from_now(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_an_entry_from_record_to_retirement(env: Env) -> None:
    account = json.loads(run(env, "accounts", "create", "--name", "Acme", "--json")[1])["id"]
    code, out = run(env, "privacy", "subprocessors", "add", *ENTRY, "--json")
    assert code == 0, out
    made = json.loads(out)
    assert (made["status"], made["countries"]) == ("proposed", ["GB", "IE"])
    code, out = run(env, "privacy", "subprocessors", "notify", made["id"],
                    "--effective-at", days_from_now(29))
    assert code != 0, out
    assert "at least 30 days" in out, out
    assert json.loads(run(env, "privacy", "subprocessors", "show", made["id"],
                          "--json")[1])["status"] == "proposed"
    code, out = run(env, "privacy", "subprocessors", "notify", made["id"],
                    "--effective-at", days_from_now(31))
    assert code == 0, out
    assert "notified" in out
    code, out = run(env, "privacy", "subprocessors", "list")
    assert code == 0
    assert made["id"] in out
    assert "Northwind Carrier Ltd" in out
    code, out = run(env, "connectors", "set-subprocessor", "nope", "--subprocessor",
                    made["id"])
    assert code != 0
    assert "connector" in out.lower()
    code, out = run(env, "connectors", "set-subprocessor", "x")
    assert code != 0
    assert "exactly one" in out
    code, out = run(env, "privacy", "subprocessors", "retire", made["id"])
    assert code == 0
    assert "retired" in out
    code, out = run(env, "privacy", "subprocessors", "notices", made["id"], "--json")
    assert code == 0
    assert all(n["account_id"] == account for n in json.loads(out))


def test_garbage_is_refused_and_nothing_is_recorded(env: Env) -> None:
    for bad in (["--country", "XX"], ["--category", "system.operations"],
                ["--legal-name", ""]):
        args = list(ENTRY)
        flag = bad[0]
        at = args.index(flag)
        args[at + 1] = bad[1]
        code, out = run(env, "privacy", "subprocessors", "add", *args)
        assert code != 0, (bad, out)
    code, out = run(env, "privacy", "subprocessors", "add", *ENTRY[:-2])
    assert code != 0
    assert "--security" in out
    assert run(env, "privacy", "subprocessors", "list") == (0, "No sub-processors.\n")
    code, out = run(env, "privacy", "subprocessors", "show", "sub_nothere")
    assert code != 0
    assert "sub_nothere" in out
