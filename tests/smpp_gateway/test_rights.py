"""Sub-account rights and suspension over SMPP, from a real SMPP client (smpplib): a
refused submit gets the matching status and is not stored; suspending an account above
unbinds the open binds of its subtree within seconds, from this process or another (the
operator's CLI), refuses new ones, and lifting it lets them bind again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
from sqlalchemy import func, select

from tests.conftest import Tenant, make_tenant
from tests.functional.server import run_cli_async, tidings_env
from tests.smpp_gateway.test_binds import status_of
from tests.smpp_gateway.test_gateway import credential
from tidings.accounts.models import Account, MessageCount
from tidings.accounts.suspension import OPERATOR, reason_of
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.storage.db import SYSTEM


@pytest.fixture
async def port(rt: Runtime) -> AsyncIterator[int]:
    """A gateway that looks at account statuses every 50 ms instead of every 2 s."""
    rt.smpp_gateway = SmppGateway(rt, status_seconds=0.05)
    yield await rt.smpp_gateway.start("127.0.0.1", 0)
    await rt.smpp_gateway.stop()
    rt.smpp_gateway = None


@dataclass
class Esme:
    """A blocking smpplib client; the test runs its calls on a thread."""

    port: int
    client: smpplib.client.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = smpplib.client.Client("127.0.0.1", self.port, timeout=10,
                                            allow_unknown_opt_params=True)

    def bind(self, system_id: str, password: str) -> None:
        self.client.connect()
        self.client.bind_transceiver(system_id=system_id, password=password)

    def submit(self, source_addr: str = "Acme") -> int:
        """The submit_sm_resp's command_status."""
        self.client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr=source_addr,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=1,
            destination_addr="12025550173", short_message=b"Hello")
        resp = self.client.read_pdu()
        assert resp.command == "submit_sm_resp"
        return int(resp.status)

    def wait_unbound(self) -> str:
        """Read until the gateway ends the session: what it sent, or that it closed."""
        try:
            while True:
                pdu = self.client.read_pdu()
                if pdu.command == "unbind":
                    return "unbind"
        except (smpplib.exceptions.ConnectionError, OSError):
            return "closed"

    def close(self) -> None:
        self.client.disconnect()


async def bound(rt: Runtime, clock: FakeClock, port: int, tenant: Tenant) -> Esme:
    esme = Esme(port)
    await asyncio.to_thread(esme.bind, *await credential(rt, tenant, clock))
    return esme


async def put_rights(client: httpx.AsyncClient, by: Tenant, account_id: str,
                     **rights: object) -> None:
    response = await client.put(f"/v1/accounts/{account_id}/rights", headers=by.headers,
                                json=rights)
    assert response.status_code == 200, response.text


async def stored(rt: Runtime, tenant: str) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == tenant)) or 0)


async def test_refused_submits_get_the_matching_smpp_status_and_are_not_stored(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        port: int) -> None:
    child = await make_tenant(rt, "Child", parent=acme.id)
    await put_rights(client, acme, child.id, sender_ids=["Acme"], monthly_message_cap=2)
    esme = await bound(rt, clock, port, child)
    try:
        assert await asyncio.to_thread(esme.submit, "Other") == CommandStatus.ESME_RINVSRCADR
        assert await asyncio.to_thread(esme.submit) == CommandStatus.ESME_ROK
        assert await asyncio.to_thread(esme.submit) == CommandStatus.ESME_ROK
        assert await asyncio.to_thread(esme.submit) == CommandStatus.ESME_RTHROTTLED
        assert await stored(rt, child.id) == 2
        async with rt.db.transaction(tenant=child.id, write=False) as session:
            assert list((await session.scalars(select(MessageCount.count))).all()) == [2]
        await put_rights(client, acme, child.id, channels=["email"])
        assert await asyncio.to_thread(esme.submit) == CommandStatus.ESME_RSUBMITFAIL
        assert await stored(rt, child.id) == 2
    finally:
        await asyncio.to_thread(esme.close)


async def test_suspending_a_grandparent_unbinds_a_grandchild_and_resuming_restores_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        port: int) -> None:
    child = await make_tenant(rt, "Child", parent=acme.id)
    grandchild = await make_tenant(rt, "Grandchild", parent=child.id)
    bystander = await make_tenant(rt, "Bystander")
    system_id, password = await credential(rt, grandchild, clock)
    esme = Esme(port)
    await asyncio.to_thread(esme.bind, system_id, password)
    other = await bound(rt, clock, port, bystander)
    try:
        assert await asyncio.to_thread(esme.submit) == CommandStatus.ESME_ROK
        # acme's own parent is the root: acme suspends its child, the grandchild's parent.
        response = await client.post(f"/v1/accounts/{child.id}/suspend",
                                     headers=acme.headers, json={"reason": "Unpaid"})
        assert response.status_code == 200, response.text
        assert await asyncio.wait_for(asyncio.to_thread(esme.wait_unbound), 5) in (
            "unbind", "closed")
        assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL
        # Another account's bind is untouched.
        assert await asyncio.to_thread(other.submit) == CommandStatus.ESME_ROK

        response = await client.post(f"/v1/accounts/{child.id}/resume", headers=acme.headers,
                                     json={})
        assert response.status_code == 200, response.text
        await until_binds(port, system_id, password)
    finally:
        await asyncio.to_thread(esme.close)
        await asyncio.to_thread(other.close)


async def until_binds(port: int, system_id: str, password: str) -> None:
    """Binds succeed again once the gateway's status cache (here 50 ms) has expired."""
    for _ in range(50):
        if await status_of(port, system_id, password) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the bind is still refused after the resume")


async def test_a_suspension_by_the_operators_cli_in_another_process_unbinds_the_subtree(
        rt: Runtime, clock: FakeClock, settings: Settings, acme: Tenant, port: int) -> None:
    child = await make_tenant(rt, "Child", parent=acme.id)
    system_id, password = await credential(rt, child, clock)
    esme = Esme(port)
    await asyncio.to_thread(esme.bind, system_id, password)
    urls = {name: getattr(settings, name) for name in (
        "database_url", "system_database_url", "migrate_database_url", "keystore_url",
        "master_key") if getattr(settings, name)}
    env = tidings_env(settings.data_dir, **urls)
    try:
        done = await run_cli_async(env, "accounts", "set-status", acme.id, "suspended",
                                   "--reason", "Chargebacks")
        assert done.returncode == 0, done.stderr
        assert await asyncio.wait_for(asyncio.to_thread(esme.wait_unbound), 5) in (
            "unbind", "closed")
        assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL
        async with rt.db.transaction(tenant=acme.id, write=False) as session:
            account = await session.get(Account, acme.id)
        assert account is not None
        assert account.suspended_by == OPERATOR
        assert reason_of(account, await rt.vault.keys_for(acme.id)) == "Chargebacks"
        done = await run_cli_async(env, "accounts", "set-status", acme.id, "active")
        assert done.returncode == 0, done.stderr
        await until_binds(port, system_id, password)
    finally:
        await asyncio.to_thread(esme.close)
