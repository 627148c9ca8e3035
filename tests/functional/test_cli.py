"""The ``tidings`` console script, run as an operator would: a real process, real files."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from tests.functional.server import TIDINGS, TidingsServer, run_cli, tidings_env

pytestmark = pytest.mark.slow

WAIT_SECONDS = 20.0  # bound for waiting on a running server to notice a CLI change
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --------------------------------------------------------------------------- helpers


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as argument tuples (the root is ``()``)."""
    from tidings.cli.main import cli

    paths: list[tuple[str, ...]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                assert sub is not None, name
                walk(sub, (*path, name))

    walk(cli, ())
    return paths


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A non-zero exit with an ``error:`` line naming the problem, and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "error" in result.stderr.lower(), output
    for needle in needles:
        assert needle in output, output


def run_in_pty(env: dict[str, str], *args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run ``tidings ARGS`` with stdout on a terminal (click only draws bars on a TTY)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([TIDINGS, *args], env={**env, "COLUMNS": "120", "TERM": "xterm"},
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    settings = tidings_env(home / "data")
    ok(run_cli(settings, "migrate"))  # the other commands need the database to be there
    return settings


@pytest.fixture(scope="module")
def server(home: Path, env: dict[str, str]) -> Iterator[TidingsServer]:
    with TidingsServer(home / "data", env, log_path=home / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def account(env: dict[str, str]) -> dict[str, Any]:
    made: dict[str, Any] = json.loads(
        ok(run_cli(env, "accounts", "create", "--name", "Acme", "--json")).stdout)
    return made


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --------------------------------------------------------------------------- accounts


def test_accounts_create_prints_the_credentials_as_json(account: dict[str, Any]) -> None:
    assert account["id"].startswith("acc_")
    assert account["name"] == "Acme"
    assert account["status"] == "active"
    assert account["api_key"].startswith("tdk_")
    assert account["webhook_secret"].startswith("whsec_")


def test_accounts_create_prints_text_without_json(env: dict[str, str]) -> None:
    result = ok(run_cli(env, "accounts", "create", "--name", "Initech"))
    assert "api_key: tdk_" in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_accounts_list_includes_the_new_account(env: dict[str, str],
                                                account: dict[str, Any]) -> None:
    listed = json.loads(ok(run_cli(env, "accounts", "list", "--json")).stdout)
    mine = [a for a in listed if a["id"] == account["id"]]
    assert len(mine) == 1
    assert mine[0]["name"] == "Acme"
    assert "api_key" not in mine[0]  # shown once, at creation only
    text = ok(run_cli(env, "accounts", "list")).stdout
    assert account["id"] in text


@pytest.mark.parametrize("name", ["", "   "])
def test_accounts_create_with_an_empty_name_is_a_clear_error(env: dict[str, str],
                                                             name: str) -> None:
    result = run_cli(env, "accounts", "create", "--name", name, "--json")
    assert result.returncode == 1
    assert_clean_failure(result, "needs a name")
    assert result.stdout == ""


def test_accounts_create_under_an_unknown_parent_is_a_clear_error(env: dict[str, str]) -> None:
    result = run_cli(env, "accounts", "create", "--name", "Sub", "--parent", "acc_nope")
    assert_clean_failure(result, "acc_nope")


def test_set_status_suspends_an_account_and_the_server_stops_its_sends(
        env: dict[str, str], server: TidingsServer) -> None:
    made = json.loads(ok(run_cli(env, "accounts", "create", "--name", "Hooli",
                                 "--json")).stdout)
    message = {"to": "+12025550173", "from": "Hooli", "body": "hello"}
    sent = httpx.post(f"{server.url}/v1/messages", json=message, headers=auth(made["api_key"]))
    assert sent.status_code == 201, sent.text

    ok(run_cli(env, "users", "create", "--account", made["id"], "--email",
               "owner@hooli.example", "--role", "owner"))
    result = ok(run_cli(env, "accounts", "set-status", made["id"], "suspended",
                        "--reason", "Unpaid invoice 42"))
    assert f"{made['id']}: suspended (1 owner(s) notified by mail)" in result.stdout

    def mailed() -> bool:  # the server's workers send what the command queued
        kept = ok(run_cli(env, "mail", "list", "--json")).stdout
        return "owner@hooli.example" in kept and "Unpaid invoice 42" in kept
    wait_for(mailed, "the owner is mailed the suspension and its reason")
    listed = json.loads(ok(run_cli(env, "accounts", "list", "--json")).stdout)
    assert {a["id"]: a["status"] for a in listed}[made["id"]] == "suspended"

    def refused() -> bool:
        answer = httpx.post(f"{server.url}/v1/messages", json=message,
                            headers=auth(made["api_key"]))
        assert answer.status_code in (201, 403), answer.text
        return answer.status_code == 403 and answer.json()["code"] == "account_suspended"

    wait_for(refused, "a suspended account's send is refused")


def test_set_status_of_an_unknown_account_or_status_is_a_clear_error(
        env: dict[str, str]) -> None:
    assert_clean_failure(run_cli(env, "accounts", "set-status", "acc_nope", "suspended"),
                         "acc_nope")
    result = run_cli(env, "accounts", "set-status", "acc_nope", "sleeping")
    assert result.returncode == 2  # click's usage error
    assert "sleeping" in result.stderr
    assert "Traceback" not in result.stderr


def test_webhook_statuses_set_at_creation_and_changed_with_set_webhook(
        env: dict[str, str], server: TidingsServer) -> None:
    made = json.loads(ok(run_cli(env, "accounts", "create", "--name", "Pied Piper",
                                 "--webhook-statuses", "final", "--json")).stdout)
    assert "delivered" in made["webhook_statuses"]
    assert "queued" not in made["webhook_statuses"]

    result = ok(run_cli(env, "accounts", "set-webhook", made["id"],
                        "--url", "https://hooks.piper.test/t", "--statuses", "sent, delivered"))
    assert "https://hooks.piper.test/t; delivered,sent" in result.stdout

    def shown() -> dict[str, Any]:
        answer = httpx.get(f"{server.url}/v1/account", headers=auth(made["api_key"]))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    wait_for(lambda: shown()["webhook_statuses"] == ["delivered", "sent"],
             "the API shows the new statuses")
    result = ok(run_cli(env, "accounts", "set-webhook", made["id"], "--no-url",
                        "--all-statuses"))
    assert "no webhook URL; every change" in result.stdout


def test_set_webhook_with_bad_input_is_a_clear_error_and_changes_nothing(
        env: dict[str, str], account: dict[str, Any]) -> None:
    assert_clean_failure(run_cli(env, "accounts", "set-webhook", account["id"],
                                 "--statuses", "delivered,lost"), "lost")
    assert_clean_failure(run_cli(env, "accounts", "set-webhook", "acc_nope",
                                 "--statuses", "final"), "acc_nope")
    for args in (("--url", "ftp://x.test"), ("--url", "https://a.test", "--no-url"),
                 ("--statuses", "final", "--all-statuses")):
        result = run_cli(env, "accounts", "set-webhook", account["id"], *args)
        assert result.returncode == 2, result.stderr  # click's usage error
        assert "Traceback" not in result.stderr
    assert_clean_failure(run_cli(env, "accounts", "create", "--name", "X",
                                 "--webhook-statuses", "soon"), "soon")
    # Cloud metadata: refused even where private addresses are allowed.
    assert_clean_failure(run_cli(env, "accounts", "set-webhook", account["id"], "--url",
                                 "http://169.254.169.254/latest"), "webhook_url_refused")
    assert_clean_failure(run_cli(env, "accounts", "create", "--name", "X", "--webhook-url",
                                 "http://metadata.google.internal/"), "webhook_url_refused")
    result = ok(run_cli(env, "accounts", "set-webhook", account["id"]))
    assert "no webhook URL; every change" in result.stdout  # nothing was changed


# --------------------------------------------------------------------------- keys


def test_keys_create_then_revoke_and_the_server_refuses_the_key(
        env: dict[str, str], server: TidingsServer, account: dict[str, Any]) -> None:
    made = json.loads(ok(run_cli(env, "keys", "create", "--account", account["id"],
                                 "--name", "ci", "--json")).stdout)
    assert made["id"].startswith("key_")
    assert made["account_id"] == account["id"]
    assert made["api_key"].startswith("tdk_")
    assert made["api_key"] != account["api_key"]

    listing = httpx.get(f"{server.url}/v1/messages", headers=auth(made["api_key"]))
    assert listing.status_code == 200, listing.text

    result = ok(run_cli(env, "keys", "revoke", "--account", account["id"], made["id"]))
    assert made["id"] in result.stdout

    def refused() -> bool:
        answer = httpx.get(f"{server.url}/v1/messages", headers=auth(made["api_key"]))
        assert answer.status_code in (200, 401), answer.text
        return answer.status_code == 401

    wait_for(refused, "a revoked key gets 401")
    assert httpx.get(f"{server.url}/v1/messages", headers=auth(made["api_key"])).json()[
        "code"] == "api_key_revoked"
    # The account's other key is untouched.
    assert httpx.get(f"{server.url}/v1/messages",
                     headers=auth(account["api_key"])).status_code == 200


def test_keys_revoke_of_an_unknown_key_is_a_clear_error(env: dict[str, str],
                                                        account: dict[str, Any]) -> None:
    assert_clean_failure(run_cli(env, "keys", "revoke", "--account", account["id"],
                                 "key_nope"), "key_nope")
    assert_clean_failure(run_cli(env, "keys", "create", "--account", "acc_nope"), "acc_nope")


# --------------------------------------------------------------------------- sandbox


def test_sandbox_inbound_to_an_unknown_number_is_a_clear_error(env: dict[str, str]) -> None:
    result = run_cli(env, "sandbox", "inbound", "--from", "+12025550111",
                     "--to", "+12025550122", "--body", "hi")
    assert_clean_failure(result, "No account owns that number")


def test_sandbox_inbound_with_a_malformed_number_is_a_clear_error(env: dict[str, str]) -> None:
    result = run_cli(env, "sandbox", "inbound", "--from", "+12025550111",
                     "--to", "not a number", "--body", "hi")
    assert_clean_failure(result, "invalid_phone_number")


def test_sandbox_inbound_reaches_the_number_owner(env: dict[str, str], server: TidingsServer,
                                                  account: dict[str, Any]) -> None:
    assigned = json.loads(ok(run_cli(env, "numbers", "assign", "--account", account["id"],
                                     "--number", "+1 202 555 0133", "--json")).stdout)
    assert (assigned["number"], assigned["account_id"]) == ("+12025550133", account["id"])
    listed = httpx.get(f"{server.url}/v1/numbers", headers=auth(account["api_key"]))
    assert [n["number"] for n in listed.json()] == ["+12025550133"]
    result = ok(run_cli(env, "sandbox", "inbound", "--from", "+12025550111",
                        "--to", "+12025550133", "--body", "hi there", "--json"))
    data = json.loads(result.stdout)
    assert data["account_id"] == account["id"]
    assert data["status"] == "received"
    read = httpx.get(f"{server.url}/v1/messages/{data['id']}", headers=auth(account["api_key"]))
    assert read.json()["body"] == "hi there"


def test_numbers_assign_refuses_a_bad_number_or_account(env: dict[str, str],
                                                        account: dict[str, Any]) -> None:
    assert_clean_failure(run_cli(env, "numbers", "assign", "--account", account["id"],
                                 "--number", "2025550134"), "invalid_phone_number")
    assert_clean_failure(run_cli(env, "numbers", "assign", "--account", "acc_nope",
                                 "--number", "+12025550134"), "acc_nope")


# --------------------------------------------------------------------------- send --csv


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "to,name") -> Path:
    path.write_text(header + "\n" + "".join(f"{to},{name}\n" for to, name in rows),
                    encoding="utf-8")
    return path


def messages_to(server: TidingsServer, key: str, number: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/v1/messages", params={"to": number}, headers=auth(key))
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def test_send_csv_reports_each_rejected_row_by_line_sends_the_rest_and_exits_1(
        env: dict[str, str], server: TidingsServer, account: dict[str, Any],
        tmp_path: Path) -> None:
    rows = [(f"+1202555{150 + i:04d}", f"Person {i}") for i in range(25)]
    rows[3] = ("", "Nobody")  # line 5 (the header is line 1), in the first chunk
    rows[16] = ("+1202555", "Too Short")  # line 18
    csv_path = write_csv(tmp_path / "people.csv", rows)
    with csv_path.open("a", encoding="utf-8") as handle:
        handle.write("+12025550199\n")  # line 27: no name for {name}

    code, output = run_in_pty(
        {**env, "TIDINGS_PORT": str(server.port), "TIDINGS_API_KEY": account["api_key"]},
        "send", "--csv", str(csv_path), "--body", "Hi {name}", "--from", "Acme",
        "--chunk", "10")
    plain = ANSI.sub("", output)
    assert code == 1, plain
    assert "accepted 23 of 26 rows, rejected 3" in plain
    assert re.search(r"Sending\s+\[#+-*\]\s+\d+/26", plain), plain  # the bar was drawn
    assert "line 5: to: is empty (invalid_phone_number)" in plain
    assert re.search(r"line 18: to: .+ \(invalid_phone_number\)", plain), plain
    assert re.search(r"line 27: .*\{name\}.* \(template_variable_missing\)", plain), plain
    assert "does not match the schema" not in plain
    assert "Traceback" not in plain
    # The empty row's chunk went without it.
    sent = messages_to(server, account["api_key"], "+12025550150")
    assert [m["body"] for m in sent] == ["Hi Person 0"]


def test_send_csv_reports_the_api_field_of_rows_the_server_refuses(
        env: dict[str, str], server: TidingsServer, account: dict[str, Any],
        tmp_path: Path) -> None:
    header = "to," + ",".join(f"v{i}" for i in range(51))  # the API takes 50 variables
    csv_path = tmp_path / "wide.csv"
    csv_path.write_text(header + "\n" + "+12025550191" + ",x" * 51 + "\n", encoding="utf-8")
    result = run_cli(env, "send", "--csv", str(csv_path), "--body", "Hi", "--from", "Acme",
                     "--api-key", account["api_key"], "--url", server.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "accepted 0 of 1 rows, rejected 1" in result.stdout
    assert re.search(r"line 2: variables: .*50.* \(validation_failed\)", result.stdout), \
        result.stdout
    assert messages_to(server, account["api_key"], "+12025550191") == []


def test_send_csv_run_again_sends_no_row_twice(
        env: dict[str, str], server: TidingsServer, account: dict[str, Any],
        tmp_path: Path) -> None:
    """Needs ``POST /v1/messages/batch`` to honour ``Idempotency-Key``."""
    csv_path = write_csv(tmp_path / "again.csv", [("+12025550181", "Ann"),
                                                  ("+12025550182", "Bo"), ("", "Nobody")])
    command = ("send", "--csv", str(csv_path), "--body", "Hi {name}", "--from", "Acme",
               "--api-key", account["api_key"], "--url", server.url, "--chunk", "2")
    first = run_cli(env, *command)
    assert first.returncode == 1, first.stdout + first.stderr  # line 4 is rejected
    assert "accepted 2 of 3 rows, rejected 1" in first.stdout
    again = run_cli(env, *command)
    for number in ("+12025550181", "+12025550182"):
        assert len(messages_to(server, account["api_key"], number)) == 1
    assert "accepted 2 of 3 rows, rejected 1 (2 accepted by an earlier run, not sent " \
           "again)" in again.stdout, again.stdout + again.stderr
    on_purpose = ok_or_rejected(run_cli(env, *command, "--run-id", "reminder"))
    assert "accepted 2 of 3 rows, rejected 1" in on_purpose.stdout
    assert "earlier run" not in on_purpose.stdout
    assert len(messages_to(server, account["api_key"], "+12025550181")) == 2


def ok_or_rejected(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Exit 1 with rows listed (rejected), never a crash."""
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_send_csv_without_a_to_column_is_a_clear_error(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "bad.csv", [("+12025550150", "A")], header="phone,name")
    result = run_cli(env, "send", "--csv", str(csv_path), "--body", "Hi", "--from", "Acme",
                     "--api-key", "tdk_x_y", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert_clean_failure(result, "'to' column")


def test_send_csv_with_a_revoked_or_wrong_key_is_a_clear_error(
        env: dict[str, str], server: TidingsServer, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "one.csv", [("+12025550150", "A")])
    result = run_cli(env, "send", "--csv", str(csv_path), "--body", "Hi", "--from", "Acme",
                     "--api-key", "tdk_000000000000_wrong", "--url", server.url)
    assert result.returncode == 1
    assert_clean_failure(result, "401")


def test_send_csv_to_a_server_that_is_not_there_is_a_clear_error(
        env: dict[str, str], tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "one.csv", [("+12025550150", "A")])
    result = run_cli(env, "send", "--csv", str(csv_path), "--body", "Hi", "--from", "Acme",
                     "--api-key", "tdk_x_y", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert_clean_failure(result, "cannot reach")


# --------------------------------------------------------------------------- the rest


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "tidings")
def test_every_command_has_help(env: dict[str, str], path: tuple[str, ...]) -> None:
    result = ok(run_cli(env, *path, "--help"))
    assert result.stdout.startswith("Usage: tidings")
    assert "Traceback" not in result.stdout + result.stderr


def test_migrate_and_audit_verify(env: dict[str, str], account: dict[str, Any]) -> None:
    """An account's creation sealed audit events (and made the key): verify checks them."""
    assert "up to date" in ok(run_cli(env, "migrate")).stdout
    result = ok(run_cli(env, "audit", "verify"))
    assert result.stdout.strip().endswith("ok")


def test_migrate_on_a_fresh_machine_makes_the_data_folder(tmp_path: Path) -> None:
    fresh = tmp_path / "never" / "made"
    assert "up to date" in ok(run_cli(tidings_env(fresh), "migrate")).stdout
    assert (fresh / "tidings.db").is_file()


def test_version(env: dict[str, str]) -> None:
    assert "version" in ok(run_cli(env, "--version")).stdout
