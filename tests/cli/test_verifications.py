"""``tidings accounts verifications|verify|reject``: the operator's list and decisions,
and bad input refused with the API's codes, changing nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.audit.service import Actor
from tidings.cli.main import cli
from tidings.core.settings import Settings
from tidings.runtime import close_runtime, open_runtime
from tidings.signup.verification import Details, do_submit_details

Env = dict[str, str | None]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None}
    assert CliRunner().invoke(cli, ["migrate"], env=env).exit_code == 0
    return env


def run(env: Env, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_nothing_waits_and_garbage_is_refused(env: Env) -> None:
    assert run(env, "accounts", "verifications") == (0, "no verifications waiting\n")
    assert run(env, "accounts", "verifications", "--json") == (0, "[]\n")
    active = json.loads(run(env, "accounts", "create", "--name", "Acme", "--json")[1])["id"]
    pending = json.loads(run(env, "accounts", "create", "--name", "Pending", "--status",
                             "pending_verification", "--json")[1])["id"]
    code, out = run(env, "accounts", "verify", pending)
    assert code == 2
    assert "--trial or --active" in out
    code, out = run(env, "accounts", "verify", "acc_nope", "--trial")
    assert code == 1
    assert "account_not_found" in out
    code, out = run(env, "accounts", "verify", active, "--active")
    assert code == 1
    assert "account_not_pending" in out
    code, out = run(env, "accounts", "verify", pending, "--trial")
    assert code == 1
    assert "verification_not_submitted" in out
    code, out = run(env, "accounts", "reject", pending, "--reason", "  ")
    assert code == 1
    assert "reason_required" in out
    code, out = run(env, "accounts", "reject", pending)
    assert code == 2
    assert "--reason" in out
    listed = json.loads(run(env, "accounts", "list", "--json")[1])
    assert {a["id"]: a["status"] for a in listed} == {active: "active",
                                                      pending: "pending_verification"}


def submit_details(env: Env, account_id: str) -> None:
    """The owner's part, through the service (a client does it over the API)."""
    async def work() -> None:
        rt = await open_runtime(Settings(data_dir=Path(str(env["TIDINGS_DATA_DIR"]))),
                                start_background=False)
        try:
            keys = await rt.vault.keys_for(account_id)
            async with rt.db.transaction(tenant=account_id) as session:
                await do_submit_details(session, keys=keys, details=DETAILS,
                                        actor=Actor("user", "usr_test"), now=rt.clock.now())
        finally:
            await close_runtime(rt)
    asyncio.run(work())


DETAILS = Details("Pending Ltd", "GB", "01234567", "Pat Pending", "pat@pending.example",
                  None, "Delivery notices.")


def test_the_operator_lists_what_waits_and_verifies_it_as_a_trial_then_active(
        env: Env) -> None:
    pending = json.loads(run(env, "accounts", "create", "--name", "Pending", "--status",
                             "pending_verification", "--json")[1])["id"]
    submit_details(env, pending)
    code, out = run(env, "accounts", "verifications")
    assert code == 0
    assert pending in out
    assert "Pat Pending <pat@pending.example>" in out
    [waiting] = json.loads(run(env, "accounts", "verifications", "--json")[1])
    assert (waiting["account_id"], waiting["details"]["legal_name"]) == (pending, "Pending Ltd")
    code, out = run(env, "accounts", "verify", pending, "--trial", "--note", "Welcome")
    assert (code, out) == (0, f"{pending}: trial\n")
    assert run(env, "accounts", "verifications", "--json") == (0, "[]\n")
    code, out = run(env, "accounts", "verify", pending, "--trial")
    assert code == 1
    assert "account_not_pending" in out
    decided = json.loads(run(env, "accounts", "verify", pending, "--active", "--json")[1])
    assert (decided["account_status"], decided["decision"]) == ("active", "active")
