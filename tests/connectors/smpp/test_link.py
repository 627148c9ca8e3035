"""The Link's request handlers, against the SMSC simulator over real TCP.

A handler may answer at once (a plain function, no task per request) or return a
coroutine (run as a task); a handler that raises is logged and the link reads on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from tidings.connectors.smpp.addresses import to_smpp
from tidings.connectors.smpp.coding import encode_text
from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import CommandStatus, DeliverSm, Pdu, SubmitSm
from tidings.connectors.smpp.receipts import receipt_from_deliver_sm
from tidings.connectors.smpp.session import Session, SessionConfig
from tidings.connectors.smpp.simulator import SimulatorBehaviour, SmscSimulator

BOUND_SECONDS = 5.0


@pytest.fixture
async def smsc_port() -> AsyncIterator[int]:
    simulator = SmscSimulator(SimulatorBehaviour(receipt_delay=0.01))
    yield await simulator.start("127.0.0.1", 0)
    await simulator.stop()


async def _bound_link(port: int, on_request: Any) -> tuple[Link, asyncio.Task[None]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    link = Link(Session("client", SessionConfig()), reader, writer, on_request=on_request)
    runner = asyncio.create_task(link.run())
    link.bind("transceiver", "esme", "secret")
    assert await link.wait_bound(BOUND_SECONDS) is not None
    return link, runner


async def _submit(link: Link, to: str, *, receipt: bool = True) -> str:
    dest_ton, dest_npi, destination = to_smpp(to)
    response = await link.request(SubmitSm(
        sequence_number=0, source_addr="Acme", source_addr_ton=5,
        dest_addr_ton=dest_ton, dest_addr_npi=dest_npi, destination_addr=destination,
        registered_delivery=1 if receipt else 0, short_message=encode_text("hello", "gsm7")))
    assert response.command_status == CommandStatus.ESME_ROK
    return str(getattr(response, "message_id", ""))


async def _close(link: Link, runner: asyncio.Task[None]) -> None:
    await link.unbind(timeout=1.0)
    await runner


async def _receipts_for(ids: set[str], received: asyncio.Queue[str]) -> set[str]:
    seen: set[str] = set()
    while not ids <= seen:
        seen.add(await asyncio.wait_for(received.get(), BOUND_SECONDS))
    return seen


async def test_a_plain_function_answers_each_receipt_at_once(smsc_port: int) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    def on_request(link: Link, pdu: Pdu) -> None:
        assert isinstance(pdu, DeliverSm)
        receipt = receipt_from_deliver_sm(pdu)
        assert receipt is not None
        received.put_nowait(receipt[0])
        link.respond(pdu)

    link, runner = await _bound_link(smsc_port, on_request)
    ids = {await _submit(link, f"+1202555010{n}") for n in range(3)}
    assert await _receipts_for(ids, received) == ids
    await _close(link, runner)


async def test_a_coroutine_handler_still_runs_as_a_task(smsc_port: int) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    def on_request(link: Link, pdu: Pdu) -> Coroutine[Any, Any, None]:
        async def later() -> None:
            await asyncio.sleep(0)
            assert isinstance(pdu, DeliverSm)
            receipt = receipt_from_deliver_sm(pdu)
            assert receipt is not None
            received.put_nowait(receipt[0])
            link.respond(pdu)
        return later()

    link, runner = await _bound_link(smsc_port, on_request)
    ids = {await _submit(link, "+12025550111")}
    assert await _receipts_for(ids, received) == ids
    await _close(link, runner)


async def test_a_handler_that_raises_leaves_the_link_reading(smsc_port: int) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    raised: list[str] = []

    def on_request(link: Link, pdu: Pdu) -> None:
        assert isinstance(pdu, DeliverSm)
        receipt = receipt_from_deliver_sm(pdu)
        assert receipt is not None
        if not raised:
            raised.append(receipt[0])
            raise RuntimeError("a bug in the handler")
        received.put_nowait(receipt[0])
        link.respond(pdu)

    link, runner = await _bound_link(smsc_port, on_request)
    first = await _submit(link, "+12025550121")
    while not raised:  # the first receipt met the bug
        await asyncio.sleep(0.005)
    second = await _submit(link, "+12025550122")
    assert second in await _receipts_for({second}, received)
    assert raised == [first]
    assert not link.is_closed
    await _close(link, runner)


class CountingWriter:
    """A real StreamWriter that counts its writes (a write is a system call)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


async def test_the_requests_of_one_turn_go_out_in_one_write(smsc_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", smsc_port)
    counting = CountingWriter(writer)
    link = Link(Session("client", SessionConfig(window=100)), reader,
                counting,  # type: ignore[arg-type]  # duck-typed: write and the rest
                on_request=lambda link, pdu: link.respond(pdu))
    runner = asyncio.create_task(link.run())
    link.bind("transceiver", "esme", "secret")
    assert await link.wait_bound(BOUND_SECONDS) is not None
    before = counting.writes

    ids = await asyncio.gather(*(_submit(link, f"+1202555{n:04d}", receipt=False)
                                 for n in range(50)))  # no receipts: nothing to answer

    assert len(set(ids)) == 50
    assert counting.writes - before == 1  # fifty submit_sm, one write
    await _close(link, runner)
