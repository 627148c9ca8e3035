"""Long messages through the gateway, from a third-party ESME (smpplib) and from
Tidings' own SMPP connector: one message, one receipt."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import smpplib.client
import smpplib.consts
from sqlalchemy import select

from tests.conftest import Tenant, settle
from tests.smpp_gateway import test_gateway as shared
from tests.smpp_gateway.test_gateway import bind, credential, until
from tidings.connectors.base import DeliveryReport, InboundMessage, OutboundMessage
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.storage.db import SYSTEM

LONG_TEXT = "All work and no play makes Jack a dull boy. " * 5  # 225 GSM-7 chars: 2 parts


gateway = shared.gateway  # the fixture, shared


@pytest.fixture
def gateway_port(gateway: tuple[SmppGateway, int]) -> int:
    return gateway[1]


class KannelLike:
    """A blocking smpplib ESME that, like Kannel, asks for a receipt on the first part only.

    Its calls block, so the test runs them on a thread while the gateway serves."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client("127.0.0.1", port, timeout=10,
                                            allow_unknown_opt_params=True)
        self.message_ids: list[str] = []
        self.delivered: list[object] = []
        self.client.set_message_sent_handler(
            lambda pdu: self.message_ids.append(pdu.message_id.decode()))
        self.client.set_message_received_handler(lambda pdu: self.delivered.append(pdu))

    def bind(self, system_id: str, password: str) -> None:
        self.client.connect()
        self.client.bind_transceiver(system_id=system_id, password=password)

    def submit_long(self, parts: Sequence[bytes]) -> None:
        for number, part in enumerate(parts, start=1):
            udh = bytes([5, 0, 3, 0x42, len(parts), number])
            self.client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="Acme",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=1,
                destination_addr="12025550173", esm_class=smpplib.consts.SMPP_GSMFEAT_UDHI,
                short_message=udh + part, registered_delivery=number == 1)
        while len(self.message_ids) < len(parts):
            self.client.read_once()

    def wait_delivered(self) -> None:
        while not self.delivered:
            self.client.read_once()

    def close(self) -> None:
        self.client.unbind()
        self.client.disconnect()


async def test_a_long_message_asking_for_a_receipt_on_its_first_part_gets_one(
        rt: Runtime, acme: Tenant, clock: FakeClock, gateway_port: int) -> None:
    system_id, password = await credential(rt, acme, clock)
    esme = KannelLike(gateway_port)
    await asyncio.to_thread(esme.bind, system_id, password)
    try:
        await asyncio.to_thread(esme.submit_long, [b"Hello, ", b"world"])
        [message_id] = set(esme.message_ids)
        async with rt.db.transaction(tenant=acme.id, write=False) as session:
            row = await session.scalar(select(Message).where(Message.id == message_id))
        assert row is not None
        assert row.smpp_receipt_to is not None
        await settle(rt, clock, seconds=6)  # dispatch, sandbox receipt, SMPP delivery
        await asyncio.wait_for(asyncio.to_thread(esme.wait_delivered), 10)
        [receipt] = esme.delivered
        assert receipt.receipted_message_id.decode() == message_id  # type: ignore[attr-defined]
    finally:
        await asyncio.to_thread(esme.close)


@dataclass
class Reports:
    taken: list[DeliveryReport] = field(default_factory=list)

    async def take_reports(self, _name: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        self.taken += reports
        return [True] * len(reports)

    async def take_inbound(self, _name: str, messages: Sequence[InboundMessage]) -> list[bool]:
        return [True] * len(messages)


async def test_a_long_message_from_tidings_to_tidings_gets_its_receipt(
        rt: Runtime, acme: Tenant, clock: FakeClock, gateway_port: int) -> None:
    system_id, password = await credential(rt, acme, clock)
    reports = Reports()
    connector = SmppConnector("upstream", SmppSettings(
        host="127.0.0.1", port=gateway_port, system_id=system_id, password=password, binds=1))
    await connector.start(reports.take_reports, reports.take_inbound)
    try:
        await until(lambda: len(connector.bound_links) == 1, "bound to the gateway")
        [result] = await connector.submit([OutboundMessage(
            "msg_upstream", "sms", "+12025550173", "Acme", LONG_TEXT, "GSM-7", 2)])
        assert result.carrier_message_id is not None
        async with rt.db.transaction(tenant=acme.id, write=False) as session:
            bodies = (await session.scalars(select(Message.num_segments))).all()
        assert bodies == [2]  # one message of two segments, not two messages
        connector.recorded([result.carrier_message_id])
        await settle(rt, clock, seconds=6)
        await until(lambda: len(reports.taken) == 1, "the receipt reached the connector")
        assert reports.taken[0].carrier_message_id == result.carrier_message_id
        assert reports.taken[0].status == "delivered"
    finally:
        await connector.stop()


async def test_a_lone_part_is_refused_when_the_rest_does_not_come_without_another_submit(
        rt: Runtime, acme: Tenant, clock: FakeClock) -> None:
    rt.smpp_gateway = SmppGateway(rt, assembly_seconds=0.1)
    port = await rt.smpp_gateway.start("127.0.0.1", 0)
    system_id, password = await credential(rt, acme, clock)
    client, runner = await bind(port, system_id, password)
    try:
        udh = bytes([5, 0, 3, 0x42, 2, 1])
        # Nothing else is sent: only the gateway's own timer can answer.
        first = await asyncio.wait_for(
            client.submit(short_message=udh + b"Hello, ", esm_class=0x40), 10)
        assert first.command_status == CommandStatus.ESME_RSUBMITFAIL
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            assert (await session.scalars(select(Message.id))).all() == []
        # The reference is free again: the whole message goes through.
        answers = await asyncio.gather(
            client.submit(short_message=udh + b"Hello, ", esm_class=0x40),
            client.submit(short_message=udh[:-1] + b"\x02" + b"world", esm_class=0x40))
        assert [a.command_status for a in answers] == [CommandStatus.ESME_ROK] * 2
    finally:
        await client.link.unbind()
        await runner
        await rt.smpp_gateway.stop()
        rt.smpp_gateway = None
