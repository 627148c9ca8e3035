"""``tidings privacy breaches``: the operator records a breach from a JSON file, appends
a version, estimates its impact, notifies the clients and closes it; garbage refused
with the API's codes, changing nothing. The group is invoked on its own here
(``tidings privacy`` attaches it)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.breaches.test_register import complete
from tidings.cli.main import cli
from tidings.cli.privacy_breaches import breaches

Env = dict[str, str | None]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    return env


def run(env: Env, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(breaches, list(args), env=env, input=stdin)
    return result.exit_code, result.output


@pytest.fixture
def account(env: Env) -> str:
    result = CliRunner().invoke(cli, ["accounts", "create", "--name", "Acme", "--json"],
                                env=env)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["id"])


def body_file(tmp_path: Path, body: Any, name: str = "breach.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def test_a_breach_from_record_to_close(env: Env, account: str, tmp_path: Path) -> None:
    code, out = run(env, "create", "--detected-at", ago(3), "--aware-at", ago(2),
                    "--file", body_file(tmp_path, complete([account])), "--json")
    assert code == 0, out
    made = json.loads(out)
    assert (made["status"], made["missing"], made["current_version"]) == ("open", [], 1)
    breach = made["id"]
    code, out = run(env, "list")
    assert code == 0
    assert breach in out
    assert re.search(r"due in 4[56]h[0-9]{2}m", out)  # 46 hours left, less the seconds run
    code, out = run(env, "update", breach, "--file", "-", "--json",
                    stdin=json.dumps({"approx_subjects": 42}))
    assert code == 0, out
    assert (json.loads(out)["current_version"], json.loads(out)["current"]["approx_subjects"]) \
        == (2, "42")
    code, out = run(env, "estimate", breach)
    assert (code, out.splitlines()[-1]) == (0, "  in all: 0 people, 0 records")
    code, out = run(env, "notify", breach, "--json")
    assert code == 0, out
    [notice] = json.loads(out)["notices"]
    # An account made by the CLI has no owner who logs in: the notice says so.
    assert (notice["tenant_id"], notice["mail_id"], notice["undeliverable"]) == (
        account, None, "no_active_owner")
    code, out = run(env, "show", breach)
    assert code == 0
    assert "notified (version 2)" in out
    assert "not sent: no_active_owner" in out
    code, out = run(env, "close", breach, "--reason", "Clients told; access removed.")
    assert code == 0
    assert "closed: Clients told; access removed." in out
    code, out = run(env, "list", "--status", "closed", "--json")
    assert [b["id"] for b in json.loads(out)] == [breach]


def test_an_overdue_breach_is_listed_as_such(env: Env, tmp_path: Path) -> None:
    code, out = run(env, "create", "--detected-at", ago(50), "--aware-at", ago(49),
                    "--json")
    assert code == 0, out
    breach = json.loads(out)["id"]
    code, out = run(env, "list", "--overdue")
    assert code == 0
    assert breach in out
    assert "OVERDUE" in out


def test_garbage_is_refused_and_changes_nothing(env: Env, account: str,
                                               tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for args, expected in [
        (("create", "--aware-at", ago(1), "--detected-at", ago(2), "--file", str(broken)),
         "not JSON"),
        (("create", "--aware-at", ago(1), "--detected-at", ago(2), "--file",
          body_file(tmp_path, [1, 2], "list.json")), "a JSON object is expected"),
        (("create", "--aware-at", ago(1)), "detected_at: Field required"),
        (("create", "--aware-at", "yesterday", "--detected-at", ago(2)), "aware_at:"),
        (("create", "--aware-at", ago(1), "--detected-at", ago(2), "--file",
          body_file(tmp_path, {"nature": "leak"}, "nature.json")), "nature:"),
        (("create", "--aware-at", ago(1), "--detected-at", ago(2), "--file",
          body_file(tmp_path, {"scope": {"tenants": ["acc_nobody"]}}, "scope.json")),
         "unknown_account"),
        (("show", "brc_nothing"), "breach_not_found"),
        (("close", "brc_nothing", "--reason", "x"), "breach_not_found"),
    ]:
        code, out = run(env, *args)
        assert code == 1, (args, out)
        assert expected in out, (args, out)
    assert run(env, "list") == (0, "No breaches.\n")
    code, out = run(env, "create", "--aware-at", ago(1), "--detected-at", ago(2), "--json")
    breach = json.loads(out)["id"]
    code, out = run(env, "notify", breach)
    assert code == 1
    assert "breach_incomplete" in out
    assert "nature, nature_description" in out
    code, out = run(env, "update", breach, "--file",
                    body_file(tmp_path, {"approx_records": "unknown"}, "records.json"))
    assert code == 1
    assert "invalid_approximation" in out
    code, out = run(env, "show", breach, "--json")
    assert (json.loads(out)["status"], json.loads(out)["current_version"]) == ("open", 1)
