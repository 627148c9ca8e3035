"""The SMSC simulator, driven over real TCP by our own client-side Session and Link.

Every test starts its simulator on 127.0.0.1 port 0 with a short receipt delay; nothing
is mocked. Waiting is by polling a condition, never by a fixed sleep, except where the
point is that something does *not* happen (and then a receipt due later than the one
that must not come proves it).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from tidings.cli.smsc_sim import smsc_sim
from tidings.connectors.smpp.addresses import to_smpp
from tidings.connectors.smpp.coding import ConcatInfo, encode_text, parse_udh, split_for_submit
from tidings.connectors.smpp.link import Link, LinkClosed
from tidings.connectors.smpp.pdu import (
    CommandStatus,
    DataSm,
    DeliverSm,
    MessageState,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from tidings.connectors.smpp.receipts import parse_receipt_text, receipt_from_deliver_sm
from tidings.connectors.smpp.session import (
    BindFailed,
    BindMode,
    Bound,
    Event,
    Session,
    SessionConfig,
    Unbound,
)
from tidings.connectors.smpp.simulator import (
    SIMULATOR_SYSTEM_ID,
    SimulatorBehaviour,
    SmscSimulator,
)
from tidings.connectors.smpp.simulator_http import ControlServer

SENDER = "+12025550173"
DESTINATION = "+447700900123"
S = CommandStatus
Answer = Callable[[DeliverSm], int | None]  # the status to answer with; None: no answer


def answer_ok(pdu: DeliverSm) -> int | None:
    return S.ESME_ROK


async def eventually(check: Callable[[], bool], timeout: float = 1.5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.005)


@dataclass
class Esme:
    """One client bind, run by our Session/Link in the client role."""

    link: Link
    runner: asyncio.Task[None]
    bind_outcome: asyncio.Future[Bound | BindFailed]
    deliveries: asyncio.Queue[DeliverSm] = field(default_factory=asyncio.Queue)
    events: list[Event] = field(default_factory=list)

    async def submit(self, to: str = DESTINATION, text: str = "hello", *,
                     sender: str = SENDER, registered_delivery: int = 1) -> Pdu:
        dest_ton, dest_npi, destination = to_smpp(to)
        source_ton, source_npi, source = to_smpp(sender)
        return await self.link.request(SubmitSm(
            sequence_number=0, source_addr_ton=source_ton, source_addr_npi=source_npi,
            source_addr=source, dest_addr_ton=dest_ton, dest_addr_npi=dest_npi,
            destination_addr=destination, registered_delivery=registered_delivery,
            short_message=encode_text(text, "gsm7")))

    async def accepted(self, to: str = DESTINATION, text: str = "hello", **fields: Any) -> str:
        response = await self.submit(to, text, **fields)
        assert isinstance(response, SubmitSmResp)
        assert response.command_status == S.ESME_ROK
        return response.message_id

    async def next_delivery(self, timeout: float = 1.5) -> DeliverSm:
        return await asyncio.wait_for(self.deliveries.get(), timeout)

    async def close(self) -> None:
        await self.link.unbind(timeout=1.0)
        await self.runner


class Harness:
    """Starts simulators and client binds, and stops them all at the end of a test."""

    def __init__(self) -> None:
        self.simulators: list[SmscSimulator] = []
        self.esmes: list[Esme] = []

    async def start(self, **knobs: Any) -> tuple[SmscSimulator, int]:
        simulator = SmscSimulator(SimulatorBehaviour(**{"receipt_delay": 0.01, **knobs}))
        self.simulators.append(simulator)
        return simulator, await simulator.start("127.0.0.1", 0)

    async def connect(self, port: int, mode: BindMode = "transceiver", *,
                      system_id: str = "esme", password: str = "secret",
                      answer: Answer = answer_ok) -> Esme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        bind_outcome: asyncio.Future[Bound | BindFailed] = (
            asyncio.get_running_loop().create_future())
        deliveries: asyncio.Queue[DeliverSm] = asyncio.Queue()
        events: list[Event] = []

        async def on_request(link: Link, pdu: Pdu) -> None:
            if not isinstance(pdu, DeliverSm):
                link.respond(pdu)
                return
            deliveries.put_nowait(pdu)
            status = answer(pdu)
            if status is not None:
                link.respond(pdu, status)

        def on_event(link: Link, event: Event) -> None:
            events.append(event)
            if isinstance(event, Bound | BindFailed) and not bind_outcome.done():
                bind_outcome.set_result(event)

        link = Link(Session("client", SessionConfig(window=10)), reader, writer,
                    on_request=on_request, on_event=on_event)
        esme = Esme(link, asyncio.create_task(link.run()), bind_outcome, deliveries, events)
        self.esmes.append(esme)
        link.bind(mode, system_id, password)
        return esme

    async def bound(self, port: int, mode: BindMode = "transceiver", **options: Any) -> Esme:
        esme = await self.connect(port, mode, **options)
        outcome = await asyncio.wait_for(esme.bind_outcome, 1.5)
        assert isinstance(outcome, Bound), outcome
        return esme

    async def close(self) -> None:
        for esme in self.esmes:
            await esme.close()
        for simulator in self.simulators:
            await simulator.stop()


@pytest.fixture
async def smsc() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()


# --- binds -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transmitter", "receiver", "transceiver"])
async def test_every_bind_mode_is_accepted(smsc: Harness, mode: BindMode) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port, mode)
    assert esme.link.bound_as == Bound(mode=mode, peer_system_id=SIMULATOR_SYSTEM_ID)
    stats = simulator.stats()
    assert (stats["bound"], stats["binds"], stats["binds_refused"]) == (1, 1, 0)


@pytest.mark.parametrize(("system_id", "password", "refusal"), [
    ("intruder", "secret", S.ESME_RINVSYSID),
    ("esme", "guess", S.ESME_RINVPASWD),
])
async def test_a_bind_with_wrong_credentials_is_refused(
        smsc: Harness, system_id: str, password: str, refusal: int) -> None:
    simulator, port = await smsc.start(system_id="esme", password="secret")
    esme = await smsc.connect(port, system_id=system_id, password=password)
    assert await asyncio.wait_for(esme.bind_outcome, 1.5) == BindFailed(refusal)
    await smsc.bound(port, system_id="esme", password="secret")
    stats = simulator.stats()
    assert (stats["binds"], stats["binds_refused"]) == (1, 1)


# --- submits and receipts ----------------------------------------------------------------


async def test_a_submit_gets_a_fresh_id_then_a_receipt_in_both_forms(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    message_id = await esme.accepted(text="hello")
    assert re.fullmatch(r"[0-9a-f]{12}", message_id)
    assert await esme.accepted(text="hello again") != message_id

    receipt = await esme.next_delivery()
    assert receipt.esm_class == 0x04
    assert (receipt.source_addr, receipt.dest_addr_ton, receipt.destination_addr) == (
        "447700900123", 1, "12025550173")
    assert receipt.optional.receipted_message_id == message_id
    assert receipt.optional.message_state == MessageState.DELIVERED
    assert receipt.optional.network_error_code is None
    text = parse_receipt_text(receipt.short_message.decode("ascii"))
    assert text is not None
    assert (text.message_id, text.stat, text.err, text.text) == (
        message_id, "DELIVRD", "000", "hello")
    assert (text.submitted, text.delivered) == (1, 1)
    assert receipt_from_deliver_sm(receipt) == (message_id, "delivered", None)
    await esme.next_delivery()
    await eventually(lambda: simulator.stats()["receipts_acknowledged"] == 2)
    assert simulator.stats()["receipts_pending"] == 0


@pytest.mark.parametrize("first_answer", [None, S.ESME_RX_T_APPN],
                         ids=["unanswered", "answered-with-error"])
async def test_a_receipt_not_answered_ok_is_sent_again(
        smsc: Harness, first_answer: int | None) -> None:
    simulator, port = await smsc.start(receipt_retry_delay=0.2)
    answers = iter([first_answer])
    esme = await smsc.bound(port, answer=lambda pdu: next(answers, S.ESME_ROK))
    message_id = await esme.accepted()
    first, again = await esme.next_delivery(), await esme.next_delivery()
    assert first.optional.receipted_message_id == again.optional.receipted_message_id
    assert again.optional.receipted_message_id == message_id
    await eventually(lambda: simulator.stats()["receipts_acknowledged"] == 1)
    stats = simulator.stats()
    assert (stats["receipts_sent"], stats["receipts_retried"], stats["receipts_pending"]) == (
        2, 1, 0)


@pytest.mark.parametrize(("destination", "stat", "state", "status", "error"), [
    ("+12025550100", "UNDELIV", MessageState.UNDELIVERABLE, "undelivered", "3:0x0001"),
    ("+12025550101", "REJECTD", MessageState.REJECTED, "rejected", "3:0x000d"),
    ("+12025550102", "EXPIRED", MessageState.EXPIRED, "expired", "3:0x001b"),
])
async def test_magic_numbers_choose_the_receipt(
        smsc: Harness, destination: str, stat: str, state: int, status: str,
        error: str) -> None:
    _, port = await smsc.start()
    esme = await smsc.bound(port)
    message_id = await esme.accepted(destination)
    receipt = await esme.next_delivery()
    assert receipt.optional.message_state == state
    text = parse_receipt_text(receipt.short_message.decode("ascii"))
    assert text is not None
    assert (text.stat, text.delivered, text.err) == (stat, 0, f"{int(error[2:], 16):03d}")
    assert receipt_from_deliver_sm(receipt) == (message_id, status, error)


async def test_magic_number_0103_is_refused_for_good(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    for _ in range(2):
        response = await esme.submit("+12025550103")
        assert response.command_status == S.ESME_RINVDSTADR
    later = await esme.accepted()
    assert (await esme.next_delivery()).optional.receipted_message_id == later
    assert simulator.stats()["submit_errors"] == {"ESME_RINVDSTADR": 2}


async def test_magic_number_0104_is_throttled_once_per_number(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    for number in ("+12025550104", "+13125550104"):
        assert (await esme.submit(number)).command_status == S.ESME_RTHROTTLED
        message_id = await esme.accepted(number)
        receipt = await esme.next_delivery()
        assert receipt_from_deliver_sm(receipt) == (message_id, "delivered", None)
    assert simulator.stats()["submit_errors"] == {"ESME_RTHROTTLED": 2}


async def test_magic_number_0105_never_gets_a_receipt(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    await esme.accepted("+12025550105")
    later = await esme.accepted()  # its receipt falls due after the 0105 one would
    assert (await esme.next_delivery()).optional.receipted_message_id == later
    assert simulator.stats()["receipts_sent"] == 1


async def test_registered_delivery_asks_for_every_receipt_or_failures_only(
        smsc: Harness) -> None:
    _, port = await smsc.start()
    esme = await smsc.bound(port)
    await esme.accepted(text="none asked", registered_delivery=0)
    await esme.accepted(text="failures only", registered_delivery=2)
    failed = await esme.accepted("+12025550100", registered_delivery=2)
    last = await esme.accepted(text="every one", registered_delivery=1)
    received = [await esme.next_delivery(), await esme.next_delivery()]
    assert [pdu.optional.receipted_message_id for pdu in received] == [failed, last]


# --- trouble on demand -------------------------------------------------------------------


async def test_throttle_and_reject_ratios_follow_the_seed(smsc: Harness) -> None:
    simulator, port = await smsc.start(throttle_ratio=0.3, reject_ratio=0.2, seed=7)
    esme = await smsc.bound(port)
    statuses = [(await esme.submit(text=f"message {n}", registered_delivery=0)).command_status
                for n in range(100)]
    draws = random.Random(7)
    expected = [S.ESME_RTHROTTLED if draw < 0.3 else S.ESME_RINVDSTADR if draw < 0.5
                else S.ESME_ROK for draw in (draws.random() for _ in range(100))]
    assert statuses == expected
    assert simulator.stats()["submit_errors"] == {
        "ESME_RINVDSTADR": expected.count(S.ESME_RINVDSTADR),
        "ESME_RTHROTTLED": expected.count(S.ESME_RTHROTTLED)}


async def test_disconnect_after_drops_the_bind_at_the_nth_submit(smsc: Harness) -> None:
    simulator, port = await smsc.start(disconnect_after=3)
    esme = await smsc.bound(port)
    await esme.accepted(text="one")
    await esme.accepted(text="two")
    with pytest.raises(LinkClosed):
        await esme.submit(text="three")
    await eventually(lambda: esme.link.is_closed)

    again = await smsc.bound(port)
    await again.accepted(text="three")  # sent again: it was never answered
    await again.accepted(text="four")
    with pytest.raises(LinkClosed):
        await again.submit(text="five")
    stats = simulator.stats()
    assert (stats["submits"], stats["submits_accepted"], stats["disconnects"]) == (6, 4, 2)
    assert stats["duplicates"] == 0


async def test_window_delay_holds_the_answers_back(smsc: Harness) -> None:
    simulator, port = await smsc.start(window_delay=0.2)
    esme = await smsc.bound(port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    submits = asyncio.gather(*(esme.accepted(text=f"m{n}") for n in range(5)))
    await eventually(lambda: simulator.stats()["submits"] == 5)
    assert simulator.stats()["submits_accepted"] == 0
    assert len(set(await submits)) == 5
    assert loop.time() - started >= 0.2


async def test_disconnect_all_drops_every_bind(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esmes = [await smsc.bound(port), await smsc.bound(port, "receiver")]
    assert simulator.disconnect_all() == 2
    await eventually(lambda: all(esme.link.is_closed for esme in esmes))
    await eventually(lambda: simulator.stats()["bound"] == 0)
    assert not any(isinstance(event, Unbound) for esme in esmes for event in esme.events)


# --- where deliver_sm go -----------------------------------------------------------------


async def test_receipts_wait_for_a_receiver_of_the_same_system_id(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    sender = await smsc.bound(port, "transmitter")
    stranger = await smsc.bound(port, "receiver", system_id="other")
    message_id = await sender.accepted()
    await asyncio.sleep(0.05)  # well past the receipt delay
    assert (simulator.stats()["receipts_sent"], simulator.stats()["receipts_pending"]) == (0, 1)

    receiver = await smsc.bound(port, "receiver")
    assert (await receiver.next_delivery()).optional.receipted_message_id == message_id
    await eventually(lambda: simulator.stats()["receipts_pending"] == 0)
    assert stranger.deliveries.empty()


async def test_an_mo_message_goes_to_a_receiving_bind(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port, "receiver")
    assert simulator.inject_mo("+12025550173", "+12025550199", "Hi") == 1
    mo = await esme.next_delivery()
    assert (mo.esm_class, mo.data_coding, mo.short_message) == (0, 0, b"Hi")
    assert (mo.source_addr_ton, mo.source_addr_npi, mo.source_addr) == (1, 1, "12025550173")
    assert (mo.dest_addr_ton, mo.dest_addr_npi, mo.destination_addr) == (1, 1, "12025550199")
    await eventually(lambda: simulator.stats()["mo_acknowledged"] == 1)
    assert simulator.stats()["mo_pending"] == 0


async def test_a_long_mo_message_goes_in_concatenated_ucs2_parts(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    body = "Grüße aus Köln 🎉 " * 10
    parts = simulator.inject_mo("+12025550173", "+12025550199", body)
    assert parts >= 3
    received = [await esme.next_delivery() for _ in range(parts)]
    assert {(pdu.esm_class, pdu.data_coding) for pdu in received} == {(0x40, 8)}
    pieces = [parse_udh(pdu.short_message, pdu.esm_class) for pdu in received]
    infos = [info for info, _ in pieces]
    assert all(info is not None and info.total == parts for info in infos)
    assert [info.seqnum for info in infos if info] == list(range(1, parts + 1))
    assert len({info.reference for info in infos if info}) == 1
    assert b"".join(octets for _, octets in pieces).decode("utf-16-be") == body


async def test_an_mo_message_waits_for_a_receiver_of_its_system_id(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    assert simulator.inject_mo("+12025550173", "+12025550199", "for other",
                               system_id="other") == 1
    assert simulator.inject_mo("+12025550173", "+12025550199", "for anyone") == 1
    assert simulator.stats()["mo_pending"] == 2
    esme = await smsc.bound(port, "receiver")
    assert (await esme.next_delivery()).short_message == b"for anyone"
    other = await smsc.bound(port, "transceiver", system_id="other")
    assert (await other.next_delivery()).short_message == b"for other"
    assert esme.deliveries.empty()
    await eventually(lambda: simulator.stats()["mo_pending"] == 0)


@pytest.mark.parametrize(("sender", "to", "body"), [
    ("", "+12025550199", "Hi"),
    ("+1" + "2" * 30, "+12025550199", "Hi"),
    ("+12025550173", "+12025550199", "x" * 153 * 256),
])
async def test_an_mo_message_smpp_cannot_carry_is_refused(
        smsc: Harness, sender: str, to: str, body: str) -> None:
    simulator, _ = await smsc.start()
    with pytest.raises(ValueError):  # noqa: PT011 - each message says what it is
        simulator.inject_mo(sender, to, body)
    assert simulator.stats()["mo_pending"] == 0


async def test_data_sm_is_not_simulated(smsc: Harness) -> None:
    _, port = await smsc.start()
    esme = await smsc.bound(port)
    response = await esme.link.request(DataSm(0, destination_addr="447700900123"))
    assert response.command_status == S.ESME_RINVCMDID


# --- what the simulator records ----------------------------------------------------------


async def test_duplicates_count_accepted_submits_seen_before(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    await esme.accepted(text="once")
    await esme.accepted(text="twice")
    await esme.accepted(text="twice")
    await esme.accepted("+447700900124", text="twice")
    await esme.accepted(text="twice", sender="+12025550174")
    assert (await esme.submit("+12025550104", "retry")).command_status == S.ESME_RTHROTTLED
    await esme.accepted("+12025550104", "retry")  # sent again after an error: no duplicate
    assert simulator.stats()["duplicates"] == 1


async def test_submits_lists_text_and_parts(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    dest_ton, dest_npi, destination = to_smpp(DESTINATION)
    ids = []
    body = "a long message " * 12
    for part in split_for_submit(body, coding="gsm7", long_mode="udh", reference=42):
        response = await esme.link.request(SubmitSm(
            0, dest_addr_ton=dest_ton, dest_addr_npi=dest_npi, destination_addr=destination,
            esm_class=part.esm_class, data_coding=part.data_coding,
            short_message=part.short_message))
        assert isinstance(response, SubmitSmResp)
        ids.append(response.message_id)
    records = simulator.submits
    assert [record.message_id for record in records] == ids
    assert [record.part for record in records] == [ConcatInfo(42, 2, 1), ConcatInfo(42, 2, 2)]
    assert "".join(record.text for record in records) == body
    listed = records[0].to_json()
    assert (listed["destination"], listed["system_id"], listed["esm_class"]) == (
        "447700900123", "esme", 0x40)
    assert listed["part"] == {"reference": 42, "total": 2, "seqnum": 1}


async def test_stop_unbinds_the_clients(smsc: Harness) -> None:
    simulator, port = await smsc.start()
    esme = await smsc.bound(port)
    await simulator.stop()
    await eventually(lambda: esme.link.is_closed)
    assert any(isinstance(event, Unbound) for event in esme.events)


# --- the control API ---------------------------------------------------------------------


@pytest.fixture
async def control(smsc: Harness) -> AsyncIterator[tuple[SmscSimulator, int, str]]:
    simulator, port = await smsc.start()
    server = ControlServer(simulator)
    control_port = await server.start(0)
    yield simulator, port, f"http://127.0.0.1:{control_port}"
    await server.close()


async def test_the_control_api_injects_mo_and_shows_stats_and_submits(
        smsc: Harness, control: tuple[SmscSimulator, int, str]) -> None:
    simulator, port, base = control
    esme = await smsc.bound(port)
    async with aiohttp.ClientSession(base) as http:
        async with http.post("/mo", json={"from": "+12025550173", "to": "+12025550199",
                                          "body": "Hi " * 70}) as response:
            assert (response.status, await response.json()) == (202, {"parts": 2})
        assert len([await esme.next_delivery(), await esme.next_delivery()]) == 2
        message_id = await esme.accepted(text="hello")
        await esme.next_delivery()  # its receipt
        async with http.get("/submits") as response:
            [listed] = await response.json()
        assert (listed["message_id"], listed["text"], listed["part"]) == (
            message_id, "hello", None)
        await eventually(lambda: simulator.stats()["receipts_acknowledged"] == 1)
        async with http.get("/stats") as response:
            stats = await response.json()
        assert (stats["submits"], stats["mo_sent"], stats["receipts_sent"]) == (1, 2, 1)
        async with http.post("/disconnect") as response:
            assert await response.json() == {"disconnected": 1}
    await eventually(lambda: esme.link.is_closed)


@pytest.mark.parametrize("body", [
    b"not json",
    b"\xff\xfe\xfa",
    b"[" * 100_000,
    b'["+12025550173", "+12025550199", "Hi"]',
    b'{"from": "+12025550173", "to": "+12025550199"}',
    b'{"from": 12025550173, "to": "+12025550199", "body": "Hi"}',
    b'{"from": "+12025550173", "to": "+12025550199", "body": "Hi", "colour": "red"}',
    b'{"from": "+12025550173", "to": "+12025550199", "body": "Hi", "system_id": 7}',
    b'{"from": "+12025550173", "to": "+1202555019999999999999", "body": "Hi"}',
], ids=["text", "bad-utf8", "deep", "list", "missing", "number", "unknown", "system-id",
        "long-address"])
async def test_the_control_api_refuses_garbage(
        control: tuple[SmscSimulator, int, str], body: bytes) -> None:
    simulator, _, base = control
    async with aiohttp.ClientSession(base) as http, http.post(
            "/mo", data=body, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert isinstance(error, str)
    assert error
    assert simulator.stats()["mo_pending"] == 0


# --- the CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [
    ["--throttle-ratio", "1.5"],
    ["--reject-ratio", "many"],
    ["--throttle-ratio", "0.6", "--reject-ratio", "0.6"],
    ["--port", "70000"],
    ["--disconnect-after", "-1"],
    ["--receipt-delay", "-0.1"],
    ["--receipt-retry-delay", "0"],
    ["--password", "far-too-long"],
    ["--colour", "red"],
])
def test_the_cli_refuses_bad_options(arguments: list[str]) -> None:
    result = CliRunner().invoke(smsc_sim, arguments)
    assert result.exit_code == 2, result.output
    assert "Error" in result.output


async def test_the_cli_serves_until_sigterm_then_prints_its_stats(smsc: Harness) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tidings.cli.smsc_sim import smsc_sim; smsc_sim()",
        "--port", "0", "--receipt-delay", "0.01", "--control-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        found = re.search(r"SMPP on 127\.0\.0\.1:(\d+), control API on (http://\S+)", line)
        assert found, line
        esme = await smsc.bound(int(found.group(1)))
        message_id = await esme.accepted()
        assert (await esme.next_delivery()).optional.receipted_message_id == message_id
        async with aiohttp.ClientSession() as http, http.get(f"{found.group(2)}/stats") as got:
            assert (await got.json())["submits"] == 1
        process.send_signal(signal.SIGTERM)
        output, errors = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, errors.decode()
    stats = json.loads(output.decode().strip().splitlines()[-1])
    assert (stats["submits_accepted"], stats["receipts_acknowledged"]) == (1, 1)
    await eventually(lambda: esme.link.is_closed)
    assert any(isinstance(event, Unbound) for event in esme.events)


def test_a_negative_count_of_answers_to_swallow_is_refused() -> None:
    with pytest.raises(ValueError, match="swallow_answers must be 0 or more"):
        SimulatorBehaviour(swallow_answers=-1)
