"""The SMPP connector against the bundled SMSC simulator, over real TCP on loopback."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tidings.connectors.base import UNAVAILABLE, DeliveryReport, InboundMessage, OutboundMessage
from tidings.connectors.smpp import ledger as ledger_module
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.connectors.smpp.simulator import SimulatorBehaviour, SmscSimulator

LONG_TEXT = "All work and no play makes Jack a dull boy. " * 5  # 225 GSM-7 chars: 2 parts


@dataclass
class Sinks:
    """What the pipeline's sinks would have stored; ``refuse`` holds reports back."""

    reports: list[DeliveryReport] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    offered: list[str] = field(default_factory=list)

    async def take_reports(self, _name: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        self.offered += [r.carrier_message_id for r in reports]
        taken = [r.carrier_message_id not in self.refuse for r in reports]
        self.reports += [r for r, ok in zip(reports, taken, strict=True) if ok]
        return taken

    async def take_inbound(self, _name: str, messages: Sequence[InboundMessage]) -> list[bool]:
        self.inbound += messages
        return [True] * len(messages)


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)


def message(message_id: str, to: str = "+12025550173", body: str = "Hello",
            encoding: str = "GSM-7") -> OutboundMessage:
    return OutboundMessage(message_id, "sms", to, "Acme", body, encoding, 1)


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(SimulatorBehaviour(receipt_delay=0.02, system_id="tidings",
                                                 password="secret"))
    simulator.port = await simulator.start()  # type: ignore[attr-defined]
    yield simulator
    await simulator.stop()


def settings_for(sim: SmscSimulator, **changes: object) -> SmppSettings:
    values: dict[str, object] = dict(host="127.0.0.1", port=sim.port,  # type: ignore[attr-defined]
                                     system_id="tidings", password="secret", binds=2,
                                     window=20)
    values.update(changes)
    return SmppSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def connector(sim: SmscSimulator) -> AsyncIterator[tuple[SmppConnector, Sinks]]:
    sinks = Sinks()
    smpp = SmppConnector("smsc", settings_for(sim))
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    await until(lambda: len(smpp.bound_links) == 2, "both binds up")
    yield smpp, sinks
    await smpp.stop()


async def test_submits_are_answered_and_receipts_reach_the_sink(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, sinks = connector
    results = await smpp.submit([message(f"msg_{i}", body=f"Hello {i}") for i in range(50)])
    assert {r.outcome for r in results} == {"accepted"}
    ids = {r.carrier_message_id for r in results}
    assert len(ids) == 50
    await until(lambda: len(sinks.reports) == 50, "50 receipts")
    assert {r.carrier_message_id for r in sinks.reports} == ids
    assert {r.status for r in sinks.reports} == {"delivered"}
    await until(lambda: sim.stats()["receipts_acknowledged"] == 50, "receipts answered")
    assert sim.stats()["duplicates"] == 0
    assert {s.system_id for s in sim.submits} == {"tidings"}


async def test_a_long_message_goes_as_udh_parts_and_its_first_part_names_it(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, _ = connector
    [result] = await smpp.submit([message("msg_long", body=LONG_TEXT)])
    parts = sim.submits
    assert len(parts) == 2
    assert [p.part.seqnum for p in parts if p.part] == [1, 2]
    assert "".join(p.text for p in parts) == LONG_TEXT
    assert result.carrier_message_id == parts[0].message_id


async def test_only_the_first_part_of_a_long_message_asks_for_a_receipt(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    """A receipt for another part would name an id no message has: unmatched, it would
    hold a slot of the SMSC's window until given up on."""
    smpp, sinks = connector
    [result] = await smpp.submit([message("msg_long", body=LONG_TEXT)])
    assert [p.pdu.registered_delivery for p in sim.submits] == [1, 0]
    await until(lambda: sim.stats()["receipts_acknowledged"] == 1, "the receipt answered")
    await smpp.submit([message("msg_after", body="Hello")])  # a receipt due after any other
    await until(lambda: sim.stats()["receipts_acknowledged"] == 2, "the next receipt")
    assert sinks.offered[0] == result.carrier_message_id
    assert len(sinks.offered) == 2


async def test_ucs2_text_arrives_intact(connector: tuple[SmppConnector, Sinks],
                                        sim: SmscSimulator) -> None:
    smpp, _ = connector
    text = "Grüße 👋 Привет"
    await smpp.submit([message("msg_u", body=text, encoding="UCS-2")])
    assert sim.submits[0].pdu.data_coding == 8
    assert sim.submits[0].text == text


async def test_permanent_errors_reject_with_the_smsc_code_and_outcomes_map(
        connector: tuple[SmppConnector, Sinks]) -> None:
    smpp, sinks = connector
    results = await smpp.submit([message("m_rej", to="+12025550103"),
                                 message("m_und", to="+12025550100"),
                                 message("m_exp", to="+12025550102")])
    assert results[0].outcome == "rejected"
    assert results[0].error_code == "smpp:ESME_RINVDSTADR"
    await until(lambda: len(sinks.reports) == 2, "two receipts")
    by_id = {r.carrier_message_id: r.status for r in sinks.reports}
    assert by_id[results[1].carrier_message_id] == "undelivered"
    assert by_id[results[2].carrier_message_id] == "expired"


async def test_a_throttled_submit_is_paused_and_sent_again(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, _ = connector
    [result] = await smpp.submit([message("m_thr", to="+12025550104")])
    assert result.outcome == "accepted"
    assert sim.stats()["submit_errors"] == {"ESME_RTHROTTLED": 1}


async def test_a_repeated_submit_is_answered_from_memory_not_sent_twice(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, _ = connector
    first = await smpp.submit([message("msg_once")])
    again = await smpp.submit([message("msg_once")])
    assert first == again
    assert len(sim.submits) == 1


async def test_a_receipt_that_overtakes_its_submit_is_offered_again_when_recorded(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, sinks = connector
    [result] = await smpp.submit([message("msg_early")])
    carrier_id = result.carrier_message_id
    assert carrier_id is not None
    sinks.refuse.add(carrier_id)  # as if the dispatcher had not stored the id yet
    await until(lambda: carrier_id in sinks.offered, "first offer")
    assert sinks.reports == []
    assert sim.stats()["receipts_acknowledged"] == 0  # not answered while refused
    sinks.refuse.clear()
    started = time.monotonic()
    smpp.recorded([carrier_id])
    await until(lambda: len(sinks.reports) == 1, "offered again")
    assert time.monotonic() - started < 1.0  # at once, not at the next timer round
    await until(lambda: sim.stats()["receipts_acknowledged"] == 1, "answered")


async def test_a_receipt_refused_while_its_submit_was_being_recorded_goes_again_at_once(
        sim: SmscSimulator) -> None:
    """The sink read the database just before the dispatcher's commit, and the
    dispatcher's ``recorded`` came before the sink's answer: no wait for the timer."""
    smpp = SmppConnector("smsc", settings_for(sim))
    answers: list[bool] = []

    async def racing_sink(_name: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        first = not answers
        if first:
            smpp.recorded([r.carrier_message_id for r in reports])  # commits meanwhile
        answers.append(not first)
        return [not first] * len(reports)

    await smpp.start(racing_sink, Sinks().take_inbound)
    try:
        await until(lambda: len(smpp.bound_links) == 2, "both binds up")
        await smpp.submit([message("msg_race")])
        await until(lambda: answers[-1:] == [True], "offered again", timeout=2.0)
        await until(lambda: sim.stats()["receipts_acknowledged"] == 1, "answered", timeout=2.0)
    finally:
        await smpp.stop()
    assert answers == [False, True]


async def test_mobile_originated_messages_reach_the_inbound_sink(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    _, sinks = connector
    sim.inject_mo("+447700900123", "+12025550199", "Hi there")
    sim.inject_mo("+447700900123", "+12025550199", LONG_TEXT)
    await until(lambda: len(sinks.inbound) == 2, "two MO")
    assert sinks.inbound[0] == InboundMessage("sms", "+447700900123", "+12025550199",
                                              "Hi there")
    assert sinks.inbound[1].body == LONG_TEXT
    await until(lambda: sim.stats()["mo_acknowledged"] == 3, "three parts answered")


async def test_without_an_smsc_submits_are_unavailable(sim: SmscSimulator) -> None:
    sinks = Sinks()
    smpp = SmppConnector("smsc", settings_for(sim, port=1))  # nothing listens on port 1
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    try:
        [result] = await smpp.submit([message("msg_down")])
    finally:
        await smpp.stop()
    assert result.outcome == "retry"
    assert result.error_code == UNAVAILABLE


async def test_wrong_credentials_never_bind(sim: SmscSimulator) -> None:
    sinks = Sinks()
    smpp = SmppConnector("smsc", settings_for(sim, password="wrong", binds=1))
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    try:
        await until(lambda: sim.stats()["binds_refused"] >= 1, "bind refused")
        assert smpp.bound_links == []
    finally:
        await smpp.stop()


async def test_binds_come_back_after_the_smsc_drops_them(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, _ = connector
    assert sim.disconnect_all() == 2
    await until(lambda: len(smpp.bound_links) == 2 and sim.stats()["binds"] >= 4,
                "binds back")
    [result] = await smpp.submit([message("msg_after")])
    assert result.outcome == "accepted"


async def test_tps_spaces_submits(sim: SmscSimulator) -> None:
    sinks = Sinks()
    smpp = SmppConnector("smsc", settings_for(sim, binds=1, tps=50.0))
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    try:
        await until(lambda: len(smpp.bound_links) == 1, "bound")
        started = time.monotonic()
        await smpp.submit([message(f"msg_{i}") for i in range(26)])
        elapsed = time.monotonic() - started
    finally:
        await smpp.stop()
    assert elapsed >= 0.45  # 25 gaps of 20 ms at 50/s


async def test_the_ledger_answers_a_resubmit_after_a_restart_without_sending_again(
        sim: SmscSimulator, tmp_path: Path) -> None:
    sinks, ledger = Sinks(), tmp_path / "smpp-ledger.db"
    first = SmppConnector("smsc", settings_for(sim), ledger_path=ledger)
    await first.start(sinks.take_reports, sinks.take_inbound)
    try:
        before = await first.submit([message("msg_ledger"),
                                     message("msg_refused", to="+12025550103")])
    finally:
        await first.stop()
    again = SmppConnector("smsc", settings_for(sim), ledger_path=ledger)  # a new process
    await again.start(sinks.take_reports, sinks.take_inbound)
    try:
        after = await again.submit([message("msg_ledger"),
                                    message("msg_refused", to="+12025550103")])
    finally:
        await again.stop()
    assert after == before
    assert [r.outcome for r in after] == ["accepted", "rejected"]
    assert len(sim.submits) == 1  # accepted once; the refused one was not tried again


async def test_a_ledger_that_cannot_write_does_not_fail_the_submit_or_send_it_twice(
        sim: SmscSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "LOCK_WAIT_SECONDS", 0.05)
    sinks, ledger = Sinks(), tmp_path / "smpp-ledger.db"
    smpp = SmppConnector("smsc", settings_for(sim), ledger_path=ledger)
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    holder = sqlite3.connect(ledger, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # the ledger's file is locked elsewhere
        [first] = await smpp.submit([message("msg_nolog")])
        [again] = await smpp.submit([message("msg_nolog")])  # the dispatcher's retry
    finally:
        holder.close()
        await smpp.stop()
    assert first.outcome == "accepted"
    assert again == first
    assert len(sim.submits) == 1


async def test_an_answer_after_the_time_out_is_kept_so_the_retry_sends_nothing(
        tmp_path: Path) -> None:
    slow = SmscSimulator(SimulatorBehaviour(window_delay=0.6, receipt_delay=0.01))
    slow.port = await slow.start()  # type: ignore[attr-defined]
    sinks = Sinks()
    smpp = SmppConnector("smsc", settings_for(slow, binds=1, response_timeout_seconds=0.3),
                         ledger_path=tmp_path / "ledger.db")
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    try:
        await until(lambda: len(smpp.bound_links) == 1, "bound")
        [first] = await smpp.submit([message("msg_slow")])
        assert (first.outcome, first.error_code) == ("retry", "smpp_responsetimeout")
        await until(lambda: len(slow.submits) == 1, "the late answer")
        await asyncio.sleep(0.05)
        [again] = await smpp.submit([message("msg_slow")])
    finally:
        await smpp.stop()
        await slow.stop()
    assert again.outcome == "accepted"
    assert again.carrier_message_id == slow.submits[0].message_id
    assert slow.stats()["submits"] == 1  # the retry did not go to the SMSC


async def test_a_submit_repeated_while_the_first_is_in_flight_waits_for_it(
        connector: tuple[SmppConnector, Sinks], sim: SmscSimulator) -> None:
    smpp, _ = connector
    first, second = await asyncio.gather(smpp.submit([message("msg_twice")]),
                                         smpp.submit([message("msg_twice")]))
    assert first == second
    assert len(sim.submits) == 1


async def test_a_stop_at_any_moment_of_the_bind_returns_and_leaves_no_bind(
        sim: SmscSimulator) -> None:
    for step in range(25):
        smpp = SmppConnector("smsc", settings_for(sim))
        await smpp.start(Sinks().take_reports, Sinks().take_inbound)
        await asyncio.sleep(step * 0.0005)  # from before the connect to after the bind
        await asyncio.wait_for(smpp.stop(), 5)
    await until(lambda: sim.stats()["bound"] == 0, "no bind left at the SMSC")
