"""``tidings connectors``, ``routes`` and ``operator-keys``, run as an operator would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.functional.server import run_cli, tidings_env
from tests.functional.test_cli import assert_clean_failure, ok
from tidings.core.settings import Settings
from tidings.routing.service import do_record_connector_errors
from tidings.runtime import close_runtime, open_runtime
from tidings.storage.db import SYSTEM

pytestmark = pytest.mark.slow

SMPP = ("connectors", "add", "smpp", "--host", "127.0.0.1", "--port", "2775",
        "--system-id", "tidings", "--password", "pw123456", "--binds", "2", "--window", "50",
        "--tps", "500")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    settings = tidings_env(Path(tmp_path_factory.mktemp("carriers")) / "data")
    ok(run_cli(settings, "migrate"))  # the other commands need the database to be there
    return settings


@pytest.fixture(scope="module")
def connector(env: dict[str, str]) -> dict[str, Any]:
    made: dict[str, Any] = json.loads(ok(run_cli(env, *SMPP, "--name", "smsc-a",
                                                 "--json")).stdout)
    return made


def test_connectors_add_smpp_prints_it_without_the_password(
        connector: dict[str, Any]) -> None:
    assert connector["name"] == "smsc-a"
    assert connector["kind"] == "smpp"
    assert connector["settings"]["binds"] == 2
    assert connector["settings"]["tps"] == 500
    assert connector["secrets"] == ["password"]
    assert "pw123456" not in json.dumps(connector)


def test_connectors_add_names_it_after_the_host_by_default(env: dict[str, str]) -> None:
    result = ok(run_cli(env, "connectors", "add", "smpp", "--host", "10.0.0.7",
                        "--system-id", "x"))
    assert "connector smpp-10-0-0-7 added" in result.stdout
    listed = json.loads(ok(run_cli(env, "connectors", "list", "--json")).stdout)
    assert "smpp-10-0-0-7" in [c["name"] for c in listed]
    ok(run_cli(env, "connectors", "remove", "smpp-10-0-0-7"))


@pytest.mark.parametrize(("extra", "needle"), [
    (("--port", "70000"), "port"),
    (("--window", "0"), "window"),
    (("--password", "far-too-long"), "password"),
    (("--name", "Bad Name"), "name"),
])
def test_connectors_add_with_bad_settings_is_a_clear_error(
        env: dict[str, str], extra: tuple[str, ...], needle: str) -> None:
    before = ok(run_cli(env, "connectors", "list", "--json")).stdout
    assert_clean_failure(run_cli(env, *SMPP, *extra), needle)
    assert ok(run_cli(env, "connectors", "list", "--json")).stdout == before


def test_a_second_connector_of_the_same_name_is_a_clear_error(
        env: dict[str, str], connector: dict[str, Any]) -> None:
    assert_clean_failure(run_cli(env, *SMPP, "--name", "smsc-a"), "connector_exists")


def test_routes_add_list_and_remove(env: dict[str, str], connector: dict[str, Any]) -> None:
    route = json.loads(ok(run_cli(env, "routes", "add", "--channel", "sms", "--prefix", "+44",
                                  "--connector", "smsc-a:70", "--json")).stdout)
    assert route["connectors"] == [{"connector": "smsc-a", "weight": 70}]
    assert "no_route" in route["warning"]
    assert route["id"] in ok(run_cli(env, "routes", "list")).stdout
    # The built-in sandbox takes the rest; the table then covers every SMS.
    rest = ok(run_cli(env, "routes", "add", "--channel", "sms", "--connector", "sandbox"))
    assert "warning" not in rest.stderr
    ok(run_cli(env, "routes", "remove", rest.stdout.split()[1]))
    partial = ok(run_cli(env, "routes", "add", "--channel", "sms", "--country", "GB",
                         "--connector", "smsc-a"))
    assert "warning: No route takes every sms message" in partial.stderr
    ok(run_cli(env, "routes", "remove", partial.stdout.split()[1]))
    assert_clean_failure(run_cli(env, "connectors", "remove", "smsc-a"), "connector_in_use")
    ok(run_cli(env, "routes", "remove", route["id"]))
    assert route["id"] not in ok(run_cli(env, "routes", "list")).stdout


@pytest.mark.parametrize(("args", "needle"), [
    (("--channel", "sms", "--connector", "ghost"), "unknown_connector"),
    (("--channel", "sms", "--connector", "smsc-a:heavy"), "weight"),
    (("--channel", "sms", "--connector", "smsc-a", "--prefix", "44"), "prefix"),
    (("--channel", "fax", "--connector", "smsc-a"), "channel"),
    (("--channel", "sms", "--connector", "smsc-a", "--account", "acc_nope"), "account_id"),
])
def test_routes_add_with_bad_input_is_a_clear_error(
        env: dict[str, str], connector: dict[str, Any], args: tuple[str, ...],
        needle: str) -> None:
    before = ok(run_cli(env, "routes", "list", "--json")).stdout
    assert_clean_failure(run_cli(env, "routes", "add", *args), needle)
    assert ok(run_cli(env, "routes", "list", "--json")).stdout == before


def test_connectors_errors_lists_what_the_carrier_reported(
        env: dict[str, str], connector: dict[str, Any]) -> None:
    assert ok(run_cli(env, "connectors", "errors", "smsc-a")).stdout.strip() == "none"
    asyncio.run(_record_errors(Path(env["TIDINGS_DATA_DIR"]), "smsc-a",
                               [(130429, "Rate limit hit"), (131000, "Something went wrong")]))
    shown = json.loads(ok(run_cli(env, "connectors", "errors", "smsc-a", "--json")).stdout)
    assert [(e["code"], e["title"]) for e in shown] == [
        (131000, "Something went wrong"), (130429, "Rate limit hit")]
    text = ok(run_cli(env, "connectors", "errors", "smsc-a", "--limit", "1")).stdout
    assert text.strip().endswith("\t131000\tSomething went wrong")
    assert_clean_failure(run_cli(env, "connectors", "errors", "ghost"), "connector_not_found")
    assert_clean_failure(run_cli(env, "connectors", "errors", "smsc-a", "--limit", "0"),
                         "limit")


async def _record_errors(data_dir: Path, connector: str,
                         errors: list[tuple[int, str]]) -> None:
    rt = await open_runtime(Settings(data_dir=data_dir), start_background=False)
    try:
        for error in errors:  # one at a time: the newest comes first
            async with rt.db.transaction(tenant=SYSTEM) as session:
                await do_record_connector_errors(session, connector=connector,
                                                 errors=[error], now=rt.clock.now())
    finally:
        await close_runtime(rt)


def test_removing_unknown_things_is_a_clear_error(env: dict[str, str]) -> None:
    assert_clean_failure(run_cli(env, "connectors", "remove", "ghost"), "connector_not_found")
    assert_clean_failure(run_cli(env, "routes", "remove", "rte_ghost"), "route_not_found")
    assert_clean_failure(run_cli(env, "operator-keys", "revoke", "opk_ghost"),
                         "operator_key_not_found")


def test_operator_keys_create_list_revoke(env: dict[str, str]) -> None:
    made = json.loads(ok(run_cli(env, "operator-keys", "create", "--name", "ops",
                                 "--json")).stdout)
    assert made["key"].startswith("tdo_")
    listed = json.loads(ok(run_cli(env, "operator-keys", "list", "--json")).stdout)
    assert {"id": made["id"], "revoked": False}.items() <= next(
        k for k in listed if k["id"] == made["id"]).items()
    assert made["key"] not in json.dumps(listed)
    ok(run_cli(env, "operator-keys", "revoke", made["id"]))
    listed = json.loads(ok(run_cli(env, "operator-keys", "list", "--json")).stdout)
    assert next(k for k in listed if k["id"] == made["id"])["revoked"] is True


def test_smpp_credentials_create_list_revoke(env: dict[str, str]) -> None:
    account = json.loads(ok(run_cli(env, "accounts", "create", "--name", "Binder",
                                    "--json")).stdout)
    made = json.loads(ok(run_cli(env, "smpp-credentials", "create", "--account", account["id"],
                                 "--system-id", "binder01", "--json")).stdout)
    assert made["system_id"] == "binder01"
    assert len(made["password"]) == 8
    listed = ok(run_cli(env, "smpp-credentials", "list", "--account", account["id"])).stdout
    assert "binder01\tactive" in listed
    assert made["password"] not in listed
    assert_clean_failure(run_cli(env, "smpp-credentials", "create", "--account", account["id"],
                                 "--system-id", "binder01"), "system_id_taken")
    assert_clean_failure(run_cli(env, "smpp-credentials", "create", "--account", account["id"],
                                 "--system-id", "has space"), "invalid_system_id")
    assert_clean_failure(run_cli(env, "smpp-credentials", "create", "--account",
                                 "acc_" + "0" * 26), "account_not_found")
    ok(run_cli(env, "smpp-credentials", "revoke", "--account", account["id"], made["id"]))
    listed = ok(run_cli(env, "smpp-credentials", "list", "--account", account["id"])).stdout
    assert "binder01\trevoked" in listed
