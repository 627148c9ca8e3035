"""``tidings notices send`` and ``tidings mail list`` on both databases: notices queued to
the owners of one account or of all, garbage refused with the API's codes and nothing
queued, and the mailbox listed newest first (sealed on disk, opened by the command)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from tests.pg import PG_ADMIN_URL, fresh_database
from tidings.audit.models import AuditEvent
from tidings.cli.main import cli
from tidings.core.settings import Settings
from tidings.jobs.outbox import Job
from tidings.mail.service import MAIL_JOB
from tidings.runtime import close_runtime, open_runtime
from tidings.storage.db import SYSTEM

Env = dict[str, str | None]
SUBJECT, BODY = "Maintenance on Sunday", "Down from 02:00 to 03:00 UTC."


def run(env: Env, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """A migrated database of its own (a fresh one on PostgreSQL), named by the environment."""
    base: Env = {"TIDINGS_DATA_DIR": str(tmp_path / "data"), "TIDINGS_DATABASE_URL": None,
                 "TIDINGS_SYSTEM_DATABASE_URL": None, "TIDINGS_MIGRATE_DATABASE_URL": None,
                 "TIDINGS_KEYSTORE_URL": None, "TIDINGS_MASTER_KEY": None,
                 "TIDINGS_PLATFORM_MAIL_RELAY": None}
    if request.param == "sqlite":
        assert run(base, "migrate").exit_code == 0
        yield base
        return
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    with fresh_database("tidings_cli_mail") as database:
        roles: Env = {**base, "TIDINGS_DATABASE_URL": database.app_url,
                      "TIDINGS_SYSTEM_DATABASE_URL": database.system_url,
                      "TIDINGS_MIGRATE_DATABASE_URL": database.owner_url}
        assert run(roles, "migrate").exit_code == 0
        yield roles


def account(env: Env, name: str, *, status: str = "active", owners: tuple[str, ...] = ()) -> str:
    made = run(env, "accounts", "create", "--name", name, "--status", status, "--json")
    account_id = str(json.loads(made.output)["id"])
    for email in owners:
        assert run(env, "users", "create", "--account", account_id, "--email", email,
                   "--role", "owner").exit_code == 0
    return account_id


def settings_of(env: Env) -> Settings:
    return Settings(**{name.removeprefix("TIDINGS_").lower(): value  # type: ignore[arg-type]
                       for name, value in env.items() if value is not None})


def deliver(env: Env) -> None:
    """What the running server's workers do: send every mail that is due."""
    async def drain() -> None:
        rt = await open_runtime(settings_of(env), start_background=False)
        try:
            await rt.worker_pool().drain()
        finally:
            await close_runtime(rt)
    asyncio.run(drain())


def queued_and_audited(env: Env) -> tuple[int, int]:
    async def count() -> tuple[int, int]:
        rt = await open_runtime(settings_of(env), start_background=False)
        try:
            async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
                jobs = await session.scalar(select(func.count()).select_from(Job).where(
                    Job.kind == MAIL_JOB))
                events = await session.scalar(select(func.count()).select_from(
                    AuditEvent).where(AuditEvent.action == "notice.send"))
            return int(jobs or 0), int(events or 0)
        finally:
            await close_runtime(rt)
    return asyncio.run(count())


def test_notices_send_all_and_mail_list_show_them_newest_first(env: Env) -> None:
    account(env, "Acme", owners=("ann@acme.example", "bob@acme.example"))
    account(env, "Trial Co", status="trial", owners=("tia@trial.example",))
    account(env, "Gone Co", status="suspended", owners=("sue@gone.example",))
    assert run(env, "mail", "list").output.strip() == "no mail"
    sent = run(env, "notices", "send", "--all", "--subject", SUBJECT, "--body", BODY)
    assert (sent.exit_code, sent.output.strip()) == (
        0, "queued 3 notice(s) to the owners of 2 account(s)")
    assert queued_and_audited(env) == (3, 3)
    deliver(env)
    listed = run(env, "mail", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert len(lines) == 3
    assert all(SUBJECT in line and "maintenance" in line and "kept" in line for line in lines)
    assert sorted(line.split()[2] for line in lines) == [
        "ann@acme.example", "bob@acme.example", "tia@trial.example"]
    full = json.loads(run(env, "mail", "list", "--json", "--to", "TIA@trial.example").output)
    assert [(m["to"], m["subject"], m["body"], m["kind"], m["status"]) for m in full] == [
        ("tia@trial.example", SUBJECT, BODY, "maintenance", "kept")]
    assert len(json.loads(run(env, "mail", "list", "--json", "--limit", "2").output)) == 2
    mailbox = (Path(str(env["TIDINGS_DATA_DIR"])) / "platform-mailbox.jsonl").read_text()
    assert [word for word in ("acme.example", SUBJECT, BODY) if word in mailbox] == []


def test_notices_send_to_one_account_goes_to_its_owners_only(env: Env) -> None:
    account(env, "Acme", owners=("ann@acme.example",))
    globex = account(env, "Globex", owners=("gus@globex.example",))
    sent = run(env, "notices", "send", "--account", globex, "--subject", SUBJECT,
               "--body", BODY, "--json")
    assert sent.exit_code == 0, sent.output
    assert (json.loads(sent.output)["queued"], json.loads(sent.output)["accounts"]) == (1, 1)
    deliver(env)
    [kept] = json.loads(run(env, "mail", "list", "--json").output)
    assert (kept["to"], kept["account_id"]) == ("gus@globex.example", globex)


@pytest.mark.parametrize(("args", "code"), [
    (("--account", "acc_nope"), "account_not_found"),
    (("--account", "GONE"), "account_not_active"),
    (("--account", "NOBODY"), "account_has_no_owner"),
    (("--all", "--account", "ACME"), "invalid_notice_audience"),
    ((), "invalid_notice_audience"),
    (("--all", "--subject", ""), "invalid_subject"),
    (("--all", "--subject", "two\nlines"), "invalid_subject"),
    (("--all", "--body", " "), "invalid_body"),
])
def test_notices_send_refuses_garbage_and_queues_nothing(env: Env, args: tuple[str, ...],
                                                         code: str) -> None:
    names = {"ACME": account(env, "Acme", owners=("ann@acme.example",)),
             "GONE": account(env, "Gone", status="suspended", owners=("sue@gone.example",)),
             "NOBODY": account(env, "Nobody")}
    chosen = [names.get(arg, arg) for arg in args]
    if "--subject" not in chosen:
        chosen += ["--subject", SUBJECT]
    if "--body" not in chosen:
        chosen += ["--body", BODY]
    refused = run(env, "notices", "send", *chosen)
    assert (refused.exit_code, code in refused.output) == (1, True), refused.output
    assert queued_and_audited(env) == (0, 0)


def test_mail_list_refuses_a_bad_limit_and_needs_the_servers_keys(env: Env,
                                                                tmp_path: Path) -> None:
    account(env, "Acme", owners=("ann@acme.example",))
    assert run(env, "notices", "send", "--all", "--subject", SUBJECT,
               "--body", BODY).exit_code == 0
    deliver(env)
    assert run(env, "mail", "list", "--limit", "0").exit_code == 2
    elsewhere = run({**env, "TIDINGS_KEY_DIR": str(tmp_path / "no-keys")}, "mail", "list")
    assert (elsewhere.exit_code, "no master key" in elsewhere.output) == (1, True)
    other_keys = tmp_path / "other-keys"
    other_keys.mkdir(mode=0o700)
    (other_keys / "master.key").write_text(base64.b64encode(bytes(32)).decode())
    (other_keys / "master.key").chmod(0o600)
    wrong = run({**env, "TIDINGS_KEY_DIR": str(other_keys)}, "mail", "list")
    assert (wrong.exit_code, "sealed with other keys" in wrong.output) == (1, True)
