"""Tidings' SMPP server: a client binds with its credential, submits, gets receipts and MO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import TEST_ACTOR, HookServer, Tenant, assign, make_tenant, settle
from tidings.accounts.models import AccountStatus
from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import (
    CommandStatus,
    DeliverSm,
    OptionalParams,
    Pdu,
    QuerySm,
    SubmitSm,
    encode,
)
from tidings.connectors.smpp.receipts import receipt_from_deliver_sm
from tidings.connectors.smpp.session import Session, SessionConfig
from tidings.core.clock import FakeClock
from tidings.messaging.inbound import receive_inbound
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.smpp_gateway.service import (
    do_create_credential,
    do_revoke_credential,
    list_credentials,
)
from tidings.storage.db import SYSTEM

OUR_NUMBER = "+12025550199"


@dataclass
class Client:
    """An ESME bound to the gateway: our own Session and Link in the client role."""

    link: Link
    delivered: list[Pdu] = field(default_factory=list)
    answer: int = CommandStatus.ESME_ROK

    async def submit(self, **fields: object) -> Pdu:
        values: dict[str, object] = dict(sequence_number=0, source_addr="Acme",
                                         source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
                                         destination_addr="12025550173",
                                         short_message=b"Hello", registered_delivery=1)
        values.update(fields)
        return await self.link.request(SubmitSm(**values))  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def gateway(rt: Runtime) -> AsyncIterator[tuple[SmppGateway, int]]:
    rt.smpp_gateway = SmppGateway(rt)
    port = await rt.smpp_gateway.start("127.0.0.1", 0)
    yield rt.smpp_gateway, port
    await rt.smpp_gateway.stop()
    rt.smpp_gateway = None


async def credential(rt: Runtime, tenant: Tenant, clock: FakeClock) -> tuple[str, str]:
    async with rt.db.transaction(tenant=tenant.id) as session:
        made = await do_create_credential(session, tenant=tenant.id, system_id=None,
                                          name="test", actor=TEST_ACTOR, now=clock.now())
    return made.credential.system_id, made.password


async def bind(port: int, system_id: str, password: str,
               mode: str = "transceiver") -> tuple[Client, asyncio.Task[None]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client_box: list[Client] = []

    async def on_request(link: Link, pdu: Pdu) -> None:
        client_box[0].delivered.append(pdu)
        link.respond(pdu, client_box[0].answer)

    link = Link(Session("client", SessionConfig(window=50)), reader, writer,
                on_request=on_request)
    client_box.append(Client(link))
    runner = asyncio.create_task(link.run())
    link.bind(mode, system_id, password)  # type: ignore[arg-type]
    await link.wait_bound(5.0)
    return client_box[0], runner


@pytest.fixture
async def acme_bound(rt: Runtime, acme: Tenant, clock: FakeClock,
                     gateway: tuple[SmppGateway, int]) -> AsyncIterator[Client]:
    system_id, password = await credential(rt, acme, clock)
    client, runner = await bind(gateway[1], system_id, password)
    assert client.link.bound_as is not None
    yield client
    await client.link.unbind()
    await runner


async def test_a_submit_is_a_message_of_the_account_with_its_id_as_the_answer(
        rt: Runtime, acme: Tenant, acme_bound: Client) -> None:
    response = await acme_bound.submit()
    assert response.command_status == CommandStatus.ESME_ROK
    message_id = getattr(response, "message_id", "")
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        row = await session.get(Message, message_id)
    assert row is not None
    assert row.tenant_id == acme.id
    assert row.status == "queued"
    assert row.smpp_receipt_to is not None
    assert b"Hello" not in row.body_enc  # stored encrypted like every other message


async def test_the_receipt_comes_back_as_deliver_sm_after_the_carrier_reports(
        rt: Runtime, clock: FakeClock, acme_bound: Client) -> None:
    response = await acme_bound.submit()
    message_id = getattr(response, "message_id", "")
    await settle(rt, clock, seconds=6)  # dispatch, sandbox receipt, SMPP delivery
    await until(lambda: len(acme_bound.delivered) == 1, "receipt delivered")
    receipt = acme_bound.delivered[0]
    assert isinstance(receipt, DeliverSm)
    assert receipt_from_deliver_sm(receipt) == (message_id, "delivered", None)
    assert receipt.source_addr == "12025550173"  # from the destination back to the sender
    assert receipt.destination_addr == "Acme"


async def test_receipts_wait_while_the_client_is_away_and_follow_it_to_a_new_bind(
        rt: Runtime, acme: Tenant, clock: FakeClock,
        gateway: tuple[SmppGateway, int]) -> None:
    system_id, password = await credential(rt, acme, clock)
    first, runner = await bind(gateway[1], system_id, password)
    response = await first.submit()
    await first.link.unbind()
    await runner
    await settle(rt, clock, seconds=6)  # the receipt is due, nobody is bound
    assert first.delivered == []
    again, runner = await bind(gateway[1], system_id, password, mode="receiver")
    try:
        await until(lambda: not gateway[0]._tasks, "the bind released the waiting job")
        await rt.worker_pool().drain()
        await until(lambda: len(again.delivered) == 1, "receipt on the new bind")
        receipt = again.delivered[0]
        assert isinstance(receipt, DeliverSm)
        assert receipt.optional.receipted_message_id == getattr(response, "message_id", "")
    finally:
        await again.link.unbind()
        await runner


async def test_inbound_messages_to_the_account_reach_its_bind(
        rt: Runtime, acme: Tenant, acme_bound: Client, clock: FakeClock) -> None:
    await assign(rt, acme.id, OUR_NUMBER)
    await receive_inbound(rt, sender="+447911123456", to=OUR_NUMBER, body="Hi from a phone",
                          channel="sms", actor=TEST_ACTOR)
    await rt.worker_pool().drain()
    await until(lambda: len(acme_bound.delivered) == 1, "MO delivered")
    mo = acme_bound.delivered[0]
    assert isinstance(mo, DeliverSm)
    assert mo.esm_class == 0
    assert (mo.source_addr, mo.destination_addr) == ("447911123456", "12025550199")
    assert mo.short_message == b"Hi from a phone"


async def test_a_concatenated_submit_becomes_one_message(rt: Runtime, acme: Tenant,
                                                         acme_bound: Client) -> None:
    udh = bytes([5, 0, 3, 0x42, 2])
    answers = await asyncio.gather(
        acme_bound.submit(short_message=udh + b"\x01" + b"Hello, ", esm_class=0x40),
        acme_bound.submit(short_message=udh + b"\x02" + b"world", esm_class=0x40))
    ids = {getattr(a, "message_id", "") for a in answers}
    assert len(ids) == 1
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        count = len((await session.scalars(select(Message.id))).all())
    assert count == 1


@pytest.mark.parametrize(("fields", "status"), [
    ({"destination_addr": "12"}, CommandStatus.ESME_RINVDSTADR),
    ({"destination_addr": "not a number", "dest_addr_ton": 0}, CommandStatus.ESME_RINVDSTADR),
    ({"source_addr": "ThisSenderIsTooLong", "source_addr_ton": 5},
     CommandStatus.ESME_RINVSRCADR),
    ({"short_message": b""}, CommandStatus.ESME_RINVMSGLEN),
])
async def test_bad_submits_get_an_smpp_error_and_store_nothing(
        rt: Runtime, acme_bound: Client, fields: dict[str, object], status: int) -> None:
    response = await acme_bound.submit(**fields)
    assert response.command_status == status
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert (await session.scalars(select(Message.id))).all() == []


async def test_query_sm_tells_the_state_of_own_messages_only(
        rt: Runtime, clock: FakeClock, acme_bound: Client,
        gateway: tuple[SmppGateway, int]) -> None:
    response = await acme_bound.submit()
    message_id = getattr(response, "message_id", "")
    query = await acme_bound.link.send_now(QuerySm(sequence_number=0, message_id=message_id))
    assert query.command_status == CommandStatus.ESME_ROK
    assert getattr(query, "message_state", None) == 1  # ENROUTE
    globex = await make_tenant(rt, "Globex")
    system_id, password = await credential(rt, globex, clock)
    other, runner = await bind(gateway[1], system_id, password)
    try:
        foreign = await other.link.send_now(QuerySm(sequence_number=0, message_id=message_id))
        assert foreign.command_status == CommandStatus.ESME_RQUERYFAIL
    finally:
        await other.link.unbind()
        await runner


async def test_binds_with_wrong_revoked_or_suspended_credentials_are_refused(
        rt: Runtime, acme: Tenant, clock: FakeClock,
        gateway: tuple[SmppGateway, int]) -> None:
    system_id, password = await credential(rt, acme, clock)
    for bad_id, bad_password in ((system_id, "wrong"), ("nobody", password),
                                 ("bad\x7fid", password)):
        client, runner = await bind(gateway[1], bad_id, bad_password)
        assert client.link.bound_as is None
        await client.link.unbind()  # close our side: refused, the socket is of no use
        await runner
    async with rt.db.transaction(tenant=acme.id) as session:
        [made] = await list_credentials(session, tenant=acme.id)
        await do_revoke_credential(session, tenant=acme.id, credential_id=made.id,
                                   actor=TEST_ACTOR, now=clock.now())
    client, runner = await bind(gateway[1], system_id, password)
    assert client.link.bound_as is None  # the right password, but revoked
    await client.link.unbind()
    await runner
    suspended = await make_tenant(rt, "Suspended", status=AccountStatus.SUSPENDED)
    system_id, password = await credential(rt, suspended, clock)
    client, runner = await bind(gateway[1], system_id, password)
    assert client.link.bound_as is None
    await client.link.unbind()
    await runner


async def test_a_submit_on_a_receiver_bind_is_refused(
        rt: Runtime, acme: Tenant, clock: FakeClock, gateway: tuple[SmppGateway, int],
        hooks: HookServer) -> None:
    system_id, password = await credential(rt, acme, clock)
    client, runner = await bind(gateway[1], system_id, password, mode="receiver")
    try:
        with pytest.raises(Exception, match="cannot send"):
            await client.submit()
    finally:
        await client.link.unbind()
        await runner


async def test_unknown_optional_parameters_do_not_break_a_submit(acme_bound: Client) -> None:
    response = await acme_bound.submit(optional=OptionalParams(other=((0x1400, b"\x01"),)))
    assert response.command_status == CommandStatus.ESME_ROK


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x05\xff",  # a command_length shorter than a header: the stream is broken
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # someone pointed a browser at the port
    bytes(range(256)),
])
async def test_garbage_on_the_port_gets_the_connection_closed_and_stores_nothing(
        rt: Runtime, gateway: tuple[SmppGateway, int], garbage: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway[1])
    writer.write(garbage)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5.0)  # until the server closes
    writer.close()
    if answer:  # what it said before closing is an SMPP generic_nack, nothing else
        assert int.from_bytes(answer[4:8], "big") == 0x80000000
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert (await session.scalars(select(Message.id))).all() == []


async def test_a_submit_before_any_bind_is_refused_with_invalid_bind_status(
        rt: Runtime, gateway: tuple[SmppGateway, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway[1])
    writer.write(encode(SubmitSm(sequence_number=7, destination_addr="12025550173",
                                 short_message=b"Hello")))
    await writer.drain()
    header = await asyncio.wait_for(reader.readexactly(16), 5.0)
    writer.close()
    assert int.from_bytes(header[4:8], "big") == 0x80000004  # submit_sm_resp
    assert int.from_bytes(header[8:12], "big") == CommandStatus.ESME_RINVBNDSTS
    assert int.from_bytes(header[12:16], "big") == 7
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert (await session.scalars(select(Message.id))).all() == []


async def test_binds_submits_by_status_and_receipts_show_in_the_metrics(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        acme_bound: Client) -> None:
    assert (await acme_bound.submit()).command_status == CommandStatus.ESME_ROK
    refused = await acme_bound.submit(destination_addr="not-a-number")
    assert refused.command_status == CommandStatus.ESME_RINVDSTADR
    await settle(rt, clock, seconds=6)  # dispatch, sandbox receipt, SMPP delivery
    await until(lambda: len(acme_bound.delivered) == 1, "receipt delivered")

    metrics = (await client.get("/metrics")).text
    for line in ("tidings_smpp_gateway_binds 1.0",
                 'tidings_smpp_gateway_submits_total{status="ESME_ROK"} 1.0',
                 'tidings_smpp_gateway_submits_total{status="ESME_RINVDSTADR"} 1.0',
                 'tidings_smpp_gateway_deliveries_total{result="ok"} 1.0',
                 "tidings_smpp_gateway_window_in_use 0.0"):
        assert line in metrics.splitlines(), line
