"""The supervisor runs what the connectors table says: added, changed and removed rows."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tidings.connectors.base import OutboundMessage
from tidings.connectors.smpp.connector import SmppConnector
from tidings.connectors.smpp.matching import ReceiptMatcher
from tidings.connectors.smpp.simulator import SmscSimulator
from tidings.routing.models import ConnectorConfig
from tidings.routing.schemas import SmppConnectorIn
from tidings.routing.service import OPERATOR_KEYRING, do_create_connector, do_remove_connector
from tidings.routing.supervisor import ConnectorSupervisor, connector_match_key
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SmscSimulator, int]]:
    simulator = SmscSimulator()
    port = await simulator.start()
    yield simulator, port
    await simulator.stop()


@pytest.fixture
async def supervisor(rt: Runtime) -> AsyncIterator[ConnectorSupervisor]:
    await rt.connectors.start(rt.report_sink, rt.inbound_sink)
    running = ConnectorSupervisor(rt.db, rt.vault, rt.connectors, reload_seconds=3600,
                                  data_dir=rt.settings.data_dir)
    await running.start()
    yield running
    await running.stop()


async def add(rt: Runtime, name: str, port: int) -> None:
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_create_connector(session, keys=keys, now=rt.clock.now(), body=SmppConnectorIn(
            name=name, host="127.0.0.1", port=port, system_id="tidings", password="pw"))


async def test_connectors_follow_the_table(rt: Runtime, supervisor: ConnectorSupervisor,
                                           sim: tuple[SmscSimulator, int]) -> None:
    simulator, port = sim
    await add(rt, "smsc", port)
    await supervisor.reload()
    connector = rt.connectors.get("smsc")
    assert isinstance(connector, SmppConnector)
    assert connector.settings.password == "pw"  # decrypted from the vault for the bind
    for _ in range(200):
        if simulator.stats()["bound"] == 1:
            break
        await asyncio.sleep(0.01)
    assert simulator.stats()["bound"] == 1
    async with rt.db.transaction(tenant=SYSTEM) as session:
        row = await session.scalar(select(ConnectorConfig))
        assert row is not None
        row.settings = {**row.settings, "window": 42}
        row.updated_at = rt.clock.now() + timedelta(seconds=1)
    await supervisor.reload()
    replaced = rt.connectors.get("smsc")
    assert isinstance(replaced, SmppConnector)
    assert replaced is not connector  # a changed row restarts the connector
    assert replaced.settings.window == 42


async def test_a_removed_row_stops_its_connector(rt: Runtime, supervisor: ConnectorSupervisor,
                                                 sim: tuple[SmscSimulator, int]) -> None:
    _, port = sim
    await add(rt, "smsc", port)
    await supervisor.reload()
    assert rt.connectors.get("smsc") is not None
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_remove_connector(session, name="smsc")
    await supervisor.reload()
    assert rt.connectors.get("smsc") is None
    assert rt.connectors.get("sandbox") is not None  # the sandbox is not the table's


async def test_a_row_this_version_cannot_run_is_skipped(rt: Runtime,
                                                        supervisor: ConnectorSupervisor,
                                                        sim: tuple[SmscSimulator, int]) -> None:
    _, port = sim
    await add(rt, "smsc", port)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(update(ConnectorConfig).values(kind="pigeon"))
    await supervisor.reload()
    assert rt.connectors.get("smsc") is None


async def test_its_smpp_connectors_record_what_leaves_keyed_from_the_key_store(
        rt: Runtime, supervisor: ConnectorSupervisor, sim: tuple[SmscSimulator, int]) -> None:
    _, port = sim
    await add(rt, "smsc", port)
    await supervisor.reload()
    connector = rt.connectors.get("smsc")
    assert isinstance(connector, SmppConnector)
    for _ in range(200):
        if connector.bound_links:
            break
        await asyncio.sleep(0.01)
    [result] = await connector.submit([OutboundMessage(
        "msg_keyed", "sms", "+12025550173", "Acme", "Hello there", "GSM-7", 1)])
    assert result.outcome == "accepted"
    async with rt.db.transaction(tenant=SYSTEM) as session:
        row = await session.scalar(select(ConnectorConfig))
    assert row is not None
    key = connector_match_key(await rt.vault.keys_for(OPERATOR_KEYRING), row.id)
    assert key != connector_match_key(await rt.vault.keys_for(OPERATOR_KEYRING), "con_other")
    ledger = rt.settings.data_dir / f"smpp-{row.id}.db"
    with contextlib.closing(sqlite3.connect(ledger)) as db:
        leaving = db.execute("SELECT message_id, match_full FROM leaving").fetchall()
    expected = ReceiptMatcher(key).for_submit("12025550173", "Acme", "Hello there").full
    assert leaving == [("msg_keyed", expected)]
    stored = b"".join(p.read_bytes() for p in rt.settings.data_dir.glob(f"smpp-{row.id}.db*"))
    assert key not in stored
    assert b"12025550173" not in stored
