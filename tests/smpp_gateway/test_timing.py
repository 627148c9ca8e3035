"""schedule_delivery_time and validity_period of a submit_sm, in SMPP's absolute and
relative forms, become the message's send_at and expiry as over the REST API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Tenant
from tests.smpp_gateway import test_gateway as shared
from tests.smpp_gateway.test_gateway import Client, until
from tidings.connectors.smpp.pdu import CommandStatus, DeliverSm
from tidings.connectors.smpp.receipts import receipt_from_deliver_sm
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

START = datetime(2026, 1, 1, tzinfo=UTC)  # the fake clock's
gateway, acme_bound = shared.gateway, shared.acme_bound  # the fixtures, shared


async def stored(rt: Runtime, tenant: Tenant, message_id: str) -> Message:
    async with rt.db.transaction(tenant=tenant.id, write=False) as session:
        row = await session.scalar(select(Message).where(Message.id == message_id))
    assert row is not None
    return row


@pytest.mark.parametrize(("validity", "expires_at"), [
    ("000000000100000R", START + timedelta(minutes=1)),
    ("260101010200004+", START + timedelta(minutes=2)),  # 01:02 an hour ahead of UTC
])
async def test_a_message_past_its_validity_period_expires_and_says_so_in_its_receipt(
        rt: Runtime, acme: Tenant, clock: FakeClock, acme_bound: Client,
        validity: str, expires_at: datetime) -> None:
    response = await acme_bound.submit(validity_period=validity)
    assert response.command_status == CommandStatus.ESME_ROK
    message_id = getattr(response, "message_id", "")
    assert (await stored(rt, acme, message_id)).expires_at == expires_at
    await rt.worker_pool().drain()
    assert (await stored(rt, acme, message_id)).status == "sent"
    clock.advance((expires_at - START).total_seconds() + 1)  # no carrier receipt meanwhile
    await rt.worker_pool().drain()
    assert (await stored(rt, acme, message_id)).status == "expired"
    await until(lambda: len(acme_bound.delivered) == 1, "the receipt")
    receipt = acme_bound.delivered[0]
    assert isinstance(receipt, DeliverSm)
    assert receipt_from_deliver_sm(receipt)[:2] == (message_id, "expired")  # type: ignore[index]


@pytest.mark.parametrize(("schedule", "send_at"), [
    ("000000001000000R", START + timedelta(minutes=10)),
    ("260101013000004+", START + timedelta(minutes=30)),  # 01:30 an hour ahead of UTC
])
async def test_a_scheduled_submit_waits_for_its_time(
        rt: Runtime, acme: Tenant, clock: FakeClock, acme_bound: Client,
        schedule: str, send_at: datetime) -> None:
    response = await acme_bound.submit(schedule_delivery_time=schedule)
    assert response.command_status == CommandStatus.ESME_ROK
    message_id = getattr(response, "message_id", "")
    row = await stored(rt, acme, message_id)
    assert (row.status, row.send_at) == ("scheduled", send_at)
    await rt.worker_pool().drain()
    assert (await stored(rt, acme, message_id)).status == "scheduled"
    clock.advance((send_at - START).total_seconds())
    await rt.worker_pool().drain()
    assert (await stored(rt, acme, message_id)).status == "sent"


async def test_a_long_message_takes_its_times_from_the_part_that_gives_them(
        rt: Runtime, acme: Tenant, acme_bound: Client) -> None:
    udh = bytes([5, 0, 3, 0x42, 2])
    answers = await asyncio.gather(
        acme_bound.submit(short_message=udh + b"\x01Hello, ", esm_class=0x40,
                          schedule_delivery_time="000000001000000R",
                          validity_period="000000010000000R"),
        acme_bound.submit(short_message=udh + b"\x02world", esm_class=0x40))
    row = await stored(rt, acme, getattr(answers[0], "message_id", ""))
    assert (row.send_at, row.expires_at) == (START + timedelta(minutes=10),
                                             START + timedelta(hours=1))


@pytest.mark.parametrize(("fields", "status"), [
    ({"schedule_delivery_time": "261301000000000+"}, CommandStatus.ESME_RINVSCHED),
    ({"schedule_delivery_time": "1 minute"}, CommandStatus.ESME_RINVSCHED),
    ({"schedule_delivery_time": "251231000000000+"}, CommandStatus.ESME_RINVSCHED),  # past
    ({"schedule_delivery_time": "000036000000000R"}, CommandStatus.ESME_RINVSCHED),  # 36 d
    ({"validity_period": "26010100000000x+"}, CommandStatus.ESME_RINVEXPIRY),
    ({"validity_period": "260230000000000+"}, CommandStatus.ESME_RINVEXPIRY),
    ({"validity_period": "000000000000000R"}, CommandStatus.ESME_RINVEXPIRY),  # none left
    ({"validity_period": "000015000000000R"}, CommandStatus.ESME_RINVEXPIRY),  # > 14 days
    ({"validity_period": "000000000500000R", "schedule_delivery_time": "000000001000000R"},
     CommandStatus.ESME_RINVEXPIRY),  # over before it is due
])
async def test_bad_times_are_refused_with_their_field_and_store_nothing(
        rt: Runtime, acme_bound: Client, fields: dict[str, object], status: int) -> None:
    response = await acme_bound.submit(**fields)
    assert response.command_status == status
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert (await session.scalars(select(Message.id))).all() == []
