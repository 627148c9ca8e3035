"""Connector secrets from a file, the environment or a hidden prompt, with click's
CliRunner: each way stores the secret, none prints it, and a bad source creates nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tidings.cli import secrets
from tidings.cli.main import cli
from tidings.core.settings import Settings
from tidings.routing.service import OPERATOR_KEYRING, connector_secrets, get_connector
from tidings.runtime import close_runtime, open_runtime
from tidings.storage.db import SYSTEM

SECRET = "s3cr3tpw"  # an SMPP password is at most 8 characters
SMPP = ("connectors", "add", "smpp", "--host", "127.0.0.1", "--system-id", "tidings")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secrets") / "data"


@pytest.fixture(scope="module")
def env(data_dir: Path) -> dict[str, str | None]:
    settings = {"TIDINGS_DATA_DIR": str(data_dir), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=settings).exit_code == 0
    return settings


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is a terminal (CliRunner's never is); click's prompt reads the runner's input."""
    monkeypatch.setattr(secrets, "stdin_is_terminal", lambda: True)


def invoke(env: dict[str, str | None], *args: str, stdin: str | None = None,
           extra_env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**env, **(extra_env or {})}, input=stdin)


def stored(data_dir: Path, name: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        rt = await open_runtime(Settings(data_dir=data_dir), start_background=False)
        try:
            keys = await rt.vault.keys_for(OPERATOR_KEYRING)
            async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
                return connector_secrets(keys, await get_connector(session, name=name))
        finally:
            await close_runtime(rt)
    return asyncio.run(read())


def connector_names(env: dict[str, str | None]) -> list[str]:
    result = invoke(env, "connectors", "list", "--json")
    assert result.exit_code == 0, result.output
    return [c["name"] for c in json.loads(result.output)]


def test_the_password_from_a_file(env: dict[str, str | None], data_dir: Path,
                                  tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n", encoding="utf-8")  # as `echo` leaves it
    result = invoke(env, *SMPP, "--name", "from-file", "--password-file", str(path))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert stored(data_dir, "from-file") == {"password": SECRET}


def test_the_password_from_an_environment_variable(env: dict[str, str | None],
                                                   data_dir: Path) -> None:
    result = invoke(env, *SMPP, "--name", "from-env", "--password-env", "SMSC_PASSWORD",
                    "--json", extra_env={"SMSC_PASSWORD": SECRET})
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert json.loads(result.output)["secrets"] == ["password"]
    assert stored(data_dir, "from-env") == {"password": SECRET}


def test_the_password_from_a_hidden_prompt_on_a_terminal(
        env: dict[str, str | None], data_dir: Path, terminal: None) -> None:
    result = invoke(env, *SMPP, "--name", "prompted", stdin=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert "The bind password (empty: none):" in result.output
    assert SECRET not in result.output
    assert stored(data_dir, "prompted") == {"password": SECRET}


def test_without_a_terminal_an_optional_password_stays_empty(
        env: dict[str, str | None], data_dir: Path) -> None:
    result = invoke(env, *SMPP, "--name", "no-secret", stdin=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert "password" not in result.output.lower()
    assert stored(data_dir, "no-secret") == {"password": ""}


def test_the_smtp_password_is_asked_only_with_a_username(
        env: dict[str, str | None], data_dir: Path, terminal: None) -> None:
    base = ("connectors", "add", "smtp", "--host", "relay.test", "--mail-domain", "m.test")
    result = invoke(env, *base, "--name", "smtp-anon")
    assert result.exit_code == 0, result.output
    assert "password" not in result.output.lower()
    result = invoke(env, *base, "--name", "smtp-auth", "--username", "u", stdin="relay-pw\n")
    assert result.exit_code == 0, result.output
    assert "relay-pw" not in result.output
    assert stored(data_dir, "smtp-auth") == {"password": "relay-pw"}


def test_whatsapp_secrets_each_their_own_way(env: dict[str, str | None], data_dir: Path,
                                            tmp_path: Path, terminal: None) -> None:
    (tmp_path / "token").write_text("EAAtoken", encoding="utf-8")
    result = invoke(env, "connectors", "add", "whatsapp", "--name", "wa",
                    "--phone-number-id", "1065", "--access-token-file", str(tmp_path / "token"),
                    "--app-secret-env", "WA_APP_SECRET", stdin="verify-me\n",
                    extra_env={"WA_APP_SECRET": "appsecret"})
    assert result.exit_code == 0, result.output
    assert "The verify token:" in result.output
    for secret in ("EAAtoken", "appsecret", "verify-me"):
        assert secret not in result.output
    assert stored(data_dir, "wa") == {"access_token": "EAAtoken", "app_secret": "appsecret",
                                      "verify_token": "verify-me"}


def test_a_required_secret_without_a_terminal_is_a_clear_error(
        env: dict[str, str | None]) -> None:
    result = invoke(env, "connectors", "add", "whatsapp", "--name", "wa-missing",
                    "--phone-number-id", "1", "--access-token-env", "T", "--app-secret-env",
                    "T", extra_env={"T": "tok"})
    assert result.exit_code == 2
    assert "Missing the verify token: give --verify-token-file, --verify-token-env" \
        in result.output
    assert "wa-missing" not in connector_names(env)


@pytest.mark.parametrize(("args", "needle"), [
    (("--password-file", "{empty}"), "is empty"),
    (("--password-file", "{missing}"), "does not exist"),
    (("--password-file", "{folder}"), "is a directory"),
    (("--password-file", "{binary}"), "is not UTF-8 text"),
    (("--password-env", "NOT_SET_ANYWHERE"), "NOT_SET_ANYWHERE is not set"),
    (("--password-env", "EMPTY_VALUE"), "EMPTY_VALUE is empty"),
    (("--password-env", "SMSC_PASSWORD", "--password", "x"), "one way"),
])
def test_a_bad_secret_source_is_a_clear_error_that_creates_nothing(
        env: dict[str, str | None], tmp_path: Path, args: tuple[str, ...],
        needle: str) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    (tmp_path / "binary").write_bytes(b"\xff\xfepw")
    (tmp_path / "folder").mkdir()
    paths = {k: str(tmp_path / k) for k in ("empty", "missing", "folder", "binary")}
    result = invoke(env, *SMPP, "--name", "never", *(a.format(**paths) for a in args),
                    extra_env={"EMPTY_VALUE": "", "SMSC_PASSWORD": SECRET})
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    assert "never" not in connector_names(env)
