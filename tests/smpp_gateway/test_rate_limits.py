"""Rate limits on the gateway, from a real SMPP client (smpplib): submits past a bind's
limit (or its account's, shared with the API) are answered ESME_RTHROTTLED; binds from an
address with too many failures are refused unchecked, also when another process counted
them (Redis).

The limits are per day: the library counts in wall-clock time, and no test may depend on
how fast it runs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import smpplib.client
import smpplib.consts
from redis.asyncio import Redis
from sqlalchemy import func, select

from tests.conftest import Tenant, assert_problem
from tests.smpp_gateway.test_binds import Verifier, status_of
from tests.smpp_gateway.test_gateway import credential
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.smpp_gateway.bind_guard import BindPolicy
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.storage.db import SYSTEM
from tidings.web.ratelimits import open_rate_limits

GOOD = {"to": "+12025550173", "from": "Acme", "body": "Hello"}
# The gateway's own lock-out (bind_guard.py) out of the way: the rate limit acts first.
NO_GUARD = BindPolicy(slow_after=100, lock_after=100)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_smpp_bind": "2/day",
                                       "rate_limit_account": "3/day",
                                       "rate_limit_failed_binds_per_ip": "2/day"})


@pytest.fixture
async def port(rt: Runtime, verifier: Verifier) -> AsyncIterator[int]:
    rt.smpp_gateway = SmppGateway(rt, bind_policy=NO_GUARD, verify=verifier)
    yield await rt.smpp_gateway.start("127.0.0.1", 0)
    await rt.smpp_gateway.stop()
    rt.smpp_gateway = None


@pytest.fixture
def verifier() -> Verifier:
    return Verifier()


class Esme:
    """A blocking smpplib client that notes the status of every submit_sm_resp; its calls
    run on a thread while the gateway serves."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client("127.0.0.1", port, timeout=10,
                                            allow_unknown_opt_params=True)
        self.statuses: list[int] = []
        self.client.set_message_sent_handler(lambda pdu: self.statuses.append(pdu.status))
        self.client.set_error_pdu_handler(lambda pdu: None)  # noted by the handler above

    def bind(self, system_id: str, password: str) -> None:
        self.client.connect()
        self.client.bind_transceiver(system_id=system_id, password=password)

    def submit(self, count: int) -> list[int]:
        for _ in range(count):
            self.client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="Acme",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=1,
                destination_addr="12025550173", short_message=b"Hello")
        while len(self.statuses) < count:
            self.client.read_once()
        return self.statuses

    def close(self) -> None:
        self.client.unbind()
        self.client.disconnect()


async def bound(port: int, system_id: str, password: str) -> Esme:
    esme = Esme(port)
    await asyncio.to_thread(esme.bind, system_id, password)
    return esme


async def stored_messages(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_a_bind_past_its_rate_is_throttled_and_the_account_limit_is_the_apis(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int,
        client: httpx.AsyncClient) -> None:
    system_id, password = await credential(rt, acme, clock)
    first = await bound(port, system_id, password)
    second = await bound(port, system_id, password)
    try:
        # In any order: a throttled submit is answered at once, a taken one once stored.
        assert sorted(await asyncio.to_thread(first.submit, 3)) == [
            CommandStatus.ESME_ROK, CommandStatus.ESME_ROK, CommandStatus.ESME_RTHROTTLED]
        # Another bind has its own 2 a day, but the account's 3 a day are 2 spent.
        assert sorted(await asyncio.to_thread(second.submit, 2)) == [
            CommandStatus.ESME_ROK, CommandStatus.ESME_RTHROTTLED]
    finally:
        await asyncio.to_thread(first.close)
        await asyncio.to_thread(second.close)
    assert await stored_messages(rt) == 3
    assert rt.smpp_gateway is not None
    assert rt.smpp_gateway.smpp_snapshot().by_status["ESME_RTHROTTLED"] == 2
    # The same account bucket as the API's: spent for the API too.
    refused = await client.post("/v1/messages", json=GOOD, headers=acme.headers)
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["RateLimit-Limit"] == "3"


async def test_failed_binds_from_an_address_get_it_refused_without_a_password_check(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int, verifier: Verifier) -> None:
    system_id, password = await credential(rt, acme, clock)
    for guess in ("wrong", "also wrong"):
        assert await status_of(port, system_id, guess) == CommandStatus.ESME_RINVPASWD
    checked = len(verifier.calls)
    assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL
    assert await status_of(port, "somebody-else", password) == CommandStatus.ESME_RBINDFAIL
    assert len(verifier.calls) == checked  # refused before any argon2 verification


async def test_a_good_bind_does_not_count_against_its_address(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int) -> None:
    system_id, password = await credential(rt, acme, clock)
    for _ in range(3):
        assert await status_of(port, system_id, password) == 0


@pytest.mark.redis
async def test_failures_counted_by_another_process_refuse_binds_here(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int, verifier: Verifier) -> None:
    redis_url = os.environ.get("TIDINGS_TEST_REDIS_URL", "")
    if not redis_url:
        pytest.skip("TIDINGS_TEST_REDIS_URL is not set")
    system_id, password = await credential(rt, acme, clock)
    prefix = f"tidings-test-{uuid.uuid4().hex}"
    shared = rt.settings.model_copy(update={"redis_url": redis_url})

    def hidden(address: str) -> str:
        return hashlib.sha256(address.encode()).hexdigest()

    here = await open_rate_limits(shared, address_key=hidden, key_prefix=prefix)
    elsewhere = await open_rate_limits(shared, address_key=hidden, key_prefix=prefix)
    in_memory, rt.rate_limits = rt.rate_limits, here
    try:
        assert await status_of(port, system_id, password) == 0
        for _ in range(2):  # another process's failed binds from the same address
            await elsewhere.note_failed_bind("127.0.0.1")
        assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL
        assert len(verifier.calls) == 1  # the first, good bind only
    finally:
        rt.rate_limits = in_memory
        await here.close()
        await elsewhere.close()
        async with Redis.from_url(redis_url) as redis:
            keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
