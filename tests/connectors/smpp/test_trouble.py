"""Carrier trouble through the whole pipeline: the API, the dispatcher, the SMPP connector
and the SMSC simulator over TCP. Nothing is lost and nothing is sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, settle
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.connectors.smpp.simulator import SimulatorBehaviour, SmscSimulator
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.routing.schemas import RouteIn, SmppConnectorIn, TargetIn
from tidings.routing.service import OPERATOR_KEYRING, do_create_connector, do_create_route
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

COUNT = 120


async def start(rt: Runtime, behaviour: SimulatorBehaviour,
                **settings: object) -> tuple[SmscSimulator, SmppConnector]:
    sim = SmscSimulator(behaviour)
    port = await sim.start()
    smpp = SmppConnector("smsc", SmppSettings(
        host="127.0.0.1", port=port, system_id="tidings", binds=2, window=20,
        throttle_pause_seconds=0.01, **settings))  # type: ignore[arg-type]
    await rt.connectors.replace(smpp)
    await smpp.start(rt.report_sink, rt.inbound_sink)
    await route_sms_to_smsc(rt, port)
    for _ in range(200):
        if len(smpp.bound_links) == 2:
            break
        await asyncio.sleep(0.01)
    return sim, smpp


async def route_sms_to_smsc(rt: Runtime, port: int) -> None:
    """As the operator would: the connector's row and a route sending SMS to it."""
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_create_connector(session, keys=keys, now=rt.clock.now(), body=SmppConnectorIn(
            name="smsc", host="127.0.0.1", port=port, system_id="tidings"))
        await do_create_route(session, now=rt.clock.now(), body=RouteIn(
            channel="sms", connectors=[TargetIn(connector="smsc")]))
    rt.routes.invalidate()


@pytest.fixture
async def stop_after(rt: Runtime) -> AsyncIterator[list[object]]:
    started: list[object] = []
    yield started
    for thing in reversed(started):
        await thing.stop()  # type: ignore[attr-defined]


async def send_batch(client: httpx.AsyncClient, acme: Tenant) -> None:
    response = await client.post("/v1/messages/batch", headers=acme.headers, json={
        "from": "Acme", "body": "Hello {n}",
        "recipients": [{"to": f"+1202555{1000 + i:04d}", "variables": {"n": str(i)}}
                       for i in range(COUNT)]})
    assert response.status_code == 200, response.text


async def delivered(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        count = await session.scalar(select(func.count()).select_from(Message).where(
            Message.status == "delivered"))
    return int(count or 0)


async def run_until_delivered(rt: Runtime, clock: FakeClock, rounds: int = 150) -> int:
    """Drive the workers, letting time pass for retries, until every message is delivered."""
    for _ in range(rounds):
        await settle(rt, clock, seconds=5)
        await asyncio.sleep(0.02)  # receipts arrive over TCP in real time
        if await delivered(rt) == COUNT:
            break
    return await delivered(rt)


async def test_a_throttling_storm_delays_but_loses_and_repeats_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        stop_after: list[object]) -> None:
    sim, smpp = await start(rt, SimulatorBehaviour(receipt_delay=0.01, throttle_ratio=0.6))
    stop_after += [sim, smpp]
    await send_batch(client, acme)
    assert await run_until_delivered(rt, clock) == COUNT
    stats = sim.stats()
    assert stats["submits_accepted"] == COUNT
    assert stats["duplicates"] == 0
    assert stats["submit_errors"]["ESME_RTHROTTLED"] > COUNT // 2


async def test_an_smsc_dropping_binds_mid_window_loses_and_repeats_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        stop_after: list[object]) -> None:
    sim, smpp = await start(rt, SimulatorBehaviour(receipt_delay=0.01, disconnect_after=25))
    stop_after += [sim, smpp]
    await send_batch(client, acme)
    assert await run_until_delivered(rt, clock) == COUNT
    stats = sim.stats()
    assert stats["disconnects"] >= 2
    assert stats["submits_accepted"] == COUNT
    assert stats["duplicates"] == 0


async def test_latin1_coding_for_smscs_that_want_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        stop_after: list[object]) -> None:
    sim, smpp = await start(rt, SimulatorBehaviour(receipt_delay=0.01), gsm7_coding="latin1")
    stop_after += [sim, smpp]
    for body in ("Café à 5€", "Ωmega"):  # € and Ω are GSM-7 but not Latin-1
        sent = await client.post("/v1/messages", headers=acme.headers,
                                 json={"to": "+12025550173", "from": "Acme", "body": body})
        assert sent.status_code == 201
    await settle(rt, clock)
    for _ in range(100):
        if len(sim.submits) == 2:
            break
        await asyncio.sleep(0.01)
    assert [(s.pdu.data_coding, s.text) for s in sim.submits] == [
        (8, "Café à 5€"), (8, "Ωmega")]
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": "+12025550173", "from": "Acme", "body": "Café"})
    await settle(rt, clock)
    for _ in range(100):
        if len(sim.submits) == 3:
            break
        await asyncio.sleep(0.01)
    assert (sim.submits[2].pdu.data_coding, sim.submits[2].text) == (3, "Café")
