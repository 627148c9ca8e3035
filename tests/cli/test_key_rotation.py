"""``tidings keys rotate`` as an operator runs it beside a live server: every key of the
account re-wrapped under a new key-encryption key, the old one destroyed, the account's
messages still readable through the API; garbage refused with nothing changed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from tests.conftest import Tenant
from tidings.cli.main import cli
from tidings.core.settings import Settings
from tidings.runtime import Runtime
from tidings.storage.keystore import kek_table

# On PostgreSQL, the key store in a PostgreSQL database of its own.
pytestmark = pytest.mark.pg_keystore


async def rotate(settings: Settings, *args: str) -> Result:
    env = {"TIDINGS_DATA_DIR": str(settings.data_dir),
           "TIDINGS_KEY_DIR": str(settings.resolved_key_dir()),
           "TIDINGS_KEYSTORE_URL": settings.keystore_url,
           "TIDINGS_MASTER_KEY": settings.master_key}
    # Nothing else makes keys meanwhile: no need to wait before destroying the old ones.
    # On a thread of its own: the command runs its own event loop, as in a shell.
    return await asyncio.to_thread(CliRunner().invoke, cli,
                                   ["keys", "rotate", "--settle-seconds", "0", *args], env=env)


async def keks(rt: Runtime, tenant: str) -> list[tuple[int, str]]:
    async with rt.vault.keystore.connect() as conn:
        rows = (await conn.execute(select(kek_table.c.version, kek_table.c.state).where(
            kek_table.c.tenant_id == tenant).order_by(kek_table.c.version))).all()
    return [(row.version, row.state) for row in rows]


async def test_rotating_an_account_keeps_its_messages_readable(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant,
        settings: Settings) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": "+12025550173", "from": "Acme", "body": "still here"})
    assert sent.status_code == 201, sent.text

    done = await rotate(settings, "--account", acme.id)

    assert done.exit_code == 0, done.output
    assert f"{acme.id}: key-encryption key 2 active" in done.stdout
    assert "destroyed: 1" in done.stdout
    assert await keks(rt, acme.id) == [(2, "active")]
    assert await keks(rt, globex.id) == [(1, "active")]  # only the account asked for
    shown = await client.get(f"/v1/messages/{sent.json()['id']}", headers=acme.headers)
    assert shown.json()["body"] == "still here"


async def test_rotating_all_accounts_names_each(rt: Runtime, acme: Tenant, globex: Tenant,
                                                settings: Settings) -> None:
    done = await rotate(settings, "--all")
    assert done.exit_code == 0, done.output
    for tenant in (acme.id, globex.id, "*platform*"):
        assert f"{tenant}: key-encryption key 2 active" in done.stdout
        assert await keks(rt, tenant) == [(2, "active")]


async def test_garbage_is_refused_and_nothing_changes(rt: Runtime, acme: Tenant,
                                                      settings: Settings) -> None:
    before = await keks(rt, acme.id)
    for args, code, message in [
            ((), 2, "give --account ID or --all"),
            (("--account", acme.id, "--all"), 2, "give --account ID or --all"),
            (("--account", "acc_nobody"), 1, "has no keys to rotate"),
            (("--account", "x" * 5000), 1, "has no keys to rotate"),
            (("--all", "--settle-seconds", "-1"), 2, "-1")]:
        done = await rotate(settings, *args)
        assert done.exit_code == code, (args, done.output)
        assert message in done.output
    assert await keks(rt, acme.id) == before
