"""Binds to the gateway from a real SMPP client (smpplib): repeated failures lock out,
an unknown system_id costs a hash verification, and no database connection waits on one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import smpplib.client
import smpplib.exceptions
from sqlalchemy import text

from tests.conftest import Tenant
from tests.smpp_gateway.test_gateway import credential, until
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.smpp_gateway.bind_guard import BindPolicy
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.smpp_gateway.service import verify_password

LOCK = BindPolicy(slow_after=100, lock_after=3, lock_for=timedelta(minutes=15))


def bind_status(port: int, system_id: str, password: str) -> int:
    """The bind_resp's command_status (0: bound), from a blocking smpplib client."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=10,
                                   allow_unknown_opt_params=True)
    client.connect()
    try:
        client.bind_transceiver(system_id=system_id, password=password)
    except smpplib.exceptions.PDUError as refused:
        return int(refused.args[1])
    finally:
        client.disconnect()
    return 0


@dataclass
class Verifier:
    """The real verification, noting what it was asked; ``during`` runs inside it."""

    calls: list[tuple[str, bool]] = field(default_factory=list)
    during: Callable[[], None] = lambda: None

    def __call__(self, password_hash: str, password: str) -> bool:
        self.during()
        good = verify_password(password_hash, password)
        self.calls.append((password_hash, good))
        return good


@pytest.fixture
def verifier() -> Verifier:
    return Verifier()


@pytest.fixture
async def port(rt: Runtime, verifier: Verifier) -> AsyncIterator[int]:
    rt.smpp_gateway = SmppGateway(rt, bind_policy=LOCK, verify=verifier)
    yield await rt.smpp_gateway.start("127.0.0.1", 0)
    await rt.smpp_gateway.stop()
    rt.smpp_gateway = None


async def status_of(port: int, system_id: str, password: str) -> int:
    return await asyncio.to_thread(bind_status, port, system_id, password)


async def test_repeated_failures_lock_the_system_id_even_for_the_right_password_for_a_while(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int, verifier: Verifier) -> None:
    system_id, password = await credential(rt, acme, clock)
    assert await status_of(port, system_id, password) == 0
    for _ in range(3):
        assert await status_of(port, system_id, "wrong") == CommandStatus.ESME_RINVPASWD
    verified = len(verifier.calls)
    assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL
    assert len(verifier.calls) == verified  # refused while locked, without argon2's work
    clock.advance(timedelta(minutes=14).total_seconds())
    assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL
    clock.advance(timedelta(minutes=1, seconds=1).total_seconds())
    assert await status_of(port, system_id, password) == 0


async def test_failures_from_one_address_lock_it_whatever_system_ids_it_tries(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int) -> None:
    system_id, password = await credential(rt, acme, clock)
    for guess in ("alpha", "bravo", "charlie"):
        assert await status_of(port, guess, password) == CommandStatus.ESME_RINVPASWD
    assert await status_of(port, system_id, password) == CommandStatus.ESME_RBINDFAIL


@pytest.mark.parametrize("unknown", ["nobody", "bad\x7fid"])
async def test_an_unknown_system_id_costs_a_hash_verification_like_a_known_one(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int, verifier: Verifier,
        unknown: str) -> None:
    system_id, password = await credential(rt, acme, clock)
    assert await status_of(port, system_id, "wrong") == CommandStatus.ESME_RINVPASWD
    assert await status_of(port, unknown, password) == CommandStatus.ESME_RINVPASWD
    [(known_hash, known_good), (stand_in, unknown_good)] = verifier.calls
    assert (known_good, unknown_good) == (False, False)
    assert stand_in.startswith("$argon2id$")  # a real argon2 hash, as costly to check
    assert stand_in.split("$")[:4] == known_hash.split("$")[:4]  # with the same parameters


async def test_no_database_connection_is_held_while_a_password_is_verified(
        rt: Runtime, acme: Tenant, clock: FakeClock, port: int, verifier: Verifier) -> None:
    system_id, password = await credential(rt, acme, clock)
    release = threading.Event()
    checked_out: list[int] = []

    def during() -> None:  # on the verifying thread, while the bind waits for it
        checked_out.append(rt.db.engine.pool.checkedout())  # type: ignore[attr-defined]
        release.wait(10)

    verifier.during = during
    bind = asyncio.ensure_future(status_of(port, system_id, password))
    await until(lambda: bool(checked_out), "the bind is being verified")
    assert checked_out == [0]
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1  # the API is served
    release.set()
    assert await bind == 0
