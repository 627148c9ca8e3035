"""Submits whose answer a crash cut off: held after the restart, resolved by their receipt
or sent again once, against the bundled simulator over real TCP on loopback.

The crash is the first connector giving up on a submit the simulator took but never
answered (``swallow_answers``: the answer lost on its way), then stopping before any
receipt could be applied; a second connector on the same ledger is the restarted process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.connectors.smpp.test_connector import message, settings_for, until
from tidings.connectors.base import DeliveryReport, SubmitResult, refuse_inbound
from tidings.connectors.smpp import deliveries as deliveries_module
from tidings.connectors.smpp import ledger as ledger_module
from tidings.connectors.smpp.connector import SmppConnector
from tidings.connectors.smpp.resolution import UNKNOWN_HELD
from tidings.connectors.smpp.simulator import SimulatorBehaviour, SmscSimulator
from tidings.core.settings import Settings

KEY = bytes(range(32))  # from the key store in production; never in the ledger file
NO_RECEIPT = "+12025550105"  # the simulator accepts it and sends no receipt


@dataclass
class Pipeline:
    """A report sink that, like the pipeline's, takes only receipts for stored ids."""

    stored: set[str] = field(default_factory=set)
    reports: list[DeliveryReport] = field(default_factory=list)

    async def take(self, _name: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        taken = [r.carrier_message_id in self.stored for r in reports]
        self.reports += [r for r, ok in zip(reports, taken, strict=True) if ok]
        return taken


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(SimulatorBehaviour(
        receipt_delay=0.05, receipt_retry_delay=0.2, swallow_answers=1,
        system_id="tidings", password="secret"))
    simulator.port = await simulator.start()  # type: ignore[attr-defined]
    yield simulator
    await simulator.stop()


def connector(sim: SmscSimulator, ledger: Path, *, hold: float = 30.0,
              key: bytes | None = KEY, receipts: bool = True) -> SmppConnector:
    settings = settings_for(sim, binds=1, response_timeout_seconds=0.3,
                            registered_delivery=receipts)
    return SmppConnector("smsc", settings, ledger_path=ledger, match_key=key,
                         unknown_hold_seconds=hold)


async def started(smpp: SmppConnector, pipeline: Pipeline) -> SmppConnector:
    await smpp.start(pipeline.take, refuse_inbound)
    await until(lambda: len(smpp.bound_links) == 1, "bound")
    return smpp


async def crash_mid_submit(sim: SmscSimulator, ledger: Path, *ids_and_tos: tuple[str, str],
                           key: bytes | None = KEY, receipts: bool = True) -> None:
    """The messages leave; the SMSC takes the first one without its answer reaching us."""
    first = await started(connector(sim, ledger, key=key, receipts=receipts), Pipeline())
    try:
        results = await first.submit([message(i, to=to) for i, to in ids_and_tos])
    finally:
        await first.stop()
    assert results[0].outcome == "retry", results  # no answer: fate unknown
    assert sim.stats()["answers_swallowed"] == 1


async def submit_until_accepted(smpp: SmppConnector, message_id: str, to: str,
                                timeout: float = 5.0) -> tuple[SubmitResult, list[str]]:
    """Submits as the dispatcher's retries would; the answer and the held ones' codes."""
    held: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        [result] = await smpp.submit([message(message_id, to=to)])
        if result.outcome != "retry":
            return result, held
        held.append(str(result.error_code))
        await asyncio.sleep(0.05)
    raise AssertionError(f"not accepted within {timeout}s; held {held}")


async def test_a_receipt_resolves_a_submit_whose_answer_was_lost_and_it_goes_once(
        sim: SmscSimulator, tmp_path: Path) -> None:
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_lost", "+12025550173"))
    pipeline = Pipeline()
    again = await started(connector(sim, ledger), pipeline)  # the restarted process
    try:
        result, held = await submit_until_accepted(again, "msg_lost", "+12025550173")
        carrier_id = result.carrier_message_id
        assert set(held) <= {UNKNOWN_HELD}  # never sent while its fate was unknown
        assert carrier_id == sim.submits[0].message_id  # the id the SMSC gave it
        pipeline.stored.add(str(carrier_id))  # the dispatcher stores the answer
        again.recorded([str(carrier_id)])
        await until(lambda: len(pipeline.reports) == 1, "the receipt applied")
    finally:
        await again.stop()
    assert pipeline.reports == [DeliveryReport(str(carrier_id), "delivered")]
    stats = sim.stats()
    assert (stats["submits_accepted"], stats["duplicates"]) == (1, 0)
    later = await started(connector(sim, ledger), Pipeline())  # and the answer is on disk
    try:
        assert await later.submit([message("msg_lost")]) == [result]
    finally:
        await later.stop()
    assert sim.stats()["submits"] == 1


async def test_a_submit_while_the_resolution_is_being_written_waits_and_sends_nothing(
        sim: SmscSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher's look can come after the receipt matched and before its answer
    is on disk (a slow fsync under load): it gets that answer, nothing goes out."""
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_lost", "+12025550173"))
    monkeypatch.setattr(ledger_module, "GROUP_SECONDS", 0.5)  # every write slow
    again = await started(connector(sim, ledger), Pipeline())
    try:
        result, _ = await submit_until_accepted(again, "msg_lost", "+12025550173")
    finally:
        await again.stop()
    assert result.carrier_message_id == sim.submits[0].message_id
    assert sim.stats()["submits"] == 1


async def test_the_receipt_that_resolved_a_message_waits_for_a_late_dispatcher(
        sim: SmscSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dispatcher slowed by a backlog records the answer after the usual hold of an
    unmatched receipt: the receipt is still there to apply, not dropped."""
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_lost", "+12025550173"))
    # Only now: the first process must not drop the receipt before it "crashes".
    monkeypatch.setattr(deliveries_module, "HOLD_SECONDS", 0.2)
    monkeypatch.setattr(deliveries_module, "HELD_RECHECK_SECONDS", 0.05)
    pipeline = Pipeline()
    again = await started(connector(sim, ledger), pipeline)
    try:
        result, _ = await submit_until_accepted(again, "msg_lost", "+12025550173")
        await asyncio.sleep(0.5)  # past the unmatched receipts' hold
        pipeline.stored.add(str(result.carrier_message_id))
        again.recorded([str(result.carrier_message_id)])
        await until(lambda: len(pipeline.reports) == 1, "the receipt applied")
    finally:
        await again.stop()
    assert pipeline.reports == [DeliveryReport(str(result.carrier_message_id), "delivered")]


async def test_without_a_receipt_in_the_window_the_message_is_sent_again_once(
        sim: SmscSimulator, tmp_path: Path) -> None:
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_silent", NO_RECEIPT))
    again = await started(connector(sim, ledger, hold=0.5), Pipeline())
    try:
        result, held = await submit_until_accepted(again, "msg_silent", NO_RECEIPT)
        repeated = await again.submit([message("msg_silent", to=NO_RECEIPT)])
    finally:
        await again.stop()
    assert held
    assert set(held) == {UNKNOWN_HELD}
    assert result.outcome == "accepted"
    assert result.carrier_message_id == sim.submits[1].message_id
    assert repeated == [result]
    stats = sim.stats()
    assert (stats["submits_accepted"], stats["duplicates"]) == (2, 1)  # nothing lost


async def test_a_message_that_never_left_is_sent_at_once_while_unknown_ones_are_held(
        sim: SmscSimulator, tmp_path: Path) -> None:
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_lost", NO_RECEIPT))
    again = await started(connector(sim, ledger), Pipeline())
    try:
        held, fresh = await again.submit([message("msg_lost", to=NO_RECEIPT),
                                          message("msg_fresh", body="Never left")])
    finally:
        await again.stop()
    assert (held.outcome, held.error_code) == ("retry", UNKNOWN_HELD)
    assert held.retry_after_seconds is not None
    assert 0 < held.retry_after_seconds <= 7.5
    assert fresh.outcome == "accepted"
    assert [s.text for s in sim.submits] == ["Hello", "Never left"]


async def test_a_receipt_of_a_message_answered_since_the_restart_resolves_nothing(
        sim: SmscSimulator, tmp_path: Path) -> None:
    """Same number, same text: the keys match, but its carrier id came in an answer of
    this run, so it is that message's receipt, not the lost one's."""
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_lost", "+12025550173"), receipts=False)
    pipeline = Pipeline()
    again = await started(connector(sim, ledger), pipeline)
    try:
        [twin] = await again.submit([message("msg_twin")])  # "Hello" to the same number
        twin_id = str(twin.carrier_message_id)
        await until(lambda: sim.stats()["receipts_sent"] == 1, "the twin's receipt")
        await asyncio.sleep(0.1)  # refused: not stored yet
        [still] = await again.submit([message("msg_lost")])
        pipeline.stored.add(twin_id)
        again.recorded([twin_id])
        await until(lambda: len(pipeline.reports) == 1, "the twin's receipt applied")
    finally:
        await again.stop()
    assert (still.outcome, still.error_code) == ("retry", UNKNOWN_HELD)
    assert pipeline.reports == [DeliveryReport(twin_id, "delivered")]


async def test_without_a_match_key_nothing_is_held(sim: SmscSimulator, tmp_path: Path) -> None:
    """The connector as tools and tests build it, with no key: sent again at once."""
    ledger = tmp_path / "smpp.db"
    await crash_mid_submit(sim, ledger, ("msg_lost", NO_RECEIPT), key=None)
    again = await started(connector(sim, ledger, key=None), Pipeline())
    try:
        [result] = await again.submit([message("msg_lost", to=NO_RECEIPT)])
    finally:
        await again.stop()
    assert result.outcome == "accepted"
    assert sim.stats()["duplicates"] == 1


def test_a_short_match_key_is_refused(sim: SmscSimulator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        connector(sim, tmp_path / "smpp.db", key=b"short")


@pytest.mark.parametrize("hold", [-1, 121, "soon", float("nan")])
def test_a_hold_out_of_range_is_refused_with_the_setting_named(hold: object,
                                                               tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="smpp_unknown_hold_seconds"):
        Settings(data_dir=tmp_path, smpp_unknown_hold_seconds=hold)  # type: ignore[arg-type]


async def test_a_batch_waiting_for_the_window_is_not_all_recorded_as_leaving(
        tmp_path: Path) -> None:
    """30 messages for a window of 5 that the SMSC answers slowly: only those with a
    place in the window, and as many waiting next, are on disk as leaving, so a crash
    now leaves at most 10 unknown, not 30."""
    slow = SmscSimulator(SimulatorBehaviour(window_delay=0.5, receipt_delay=0.01))
    slow.port = await slow.start()  # type: ignore[attr-defined]
    ledger = tmp_path / "smpp.db"
    smpp = SmppConnector("smsc", settings_for(slow, binds=1, window=5), ledger_path=ledger,
                         match_key=KEY)
    await started(smpp, Pipeline())
    try:
        batch = asyncio.create_task(smpp.submit(
            [message(f"msg_{i}", body=f"Batch {i}") for i in range(30)]))
        await until(lambda: slow.stats()["submits"] == 5, "the first window sent")
        await asyncio.sleep(0.1)  # the leaving rows of any waiting ones written meanwhile
        with contextlib.closing(sqlite3.connect(ledger)) as db:
            [(leaving,)] = db.execute("SELECT count(*) FROM leaving").fetchall()
        results = await batch
    finally:
        await smpp.stop()
        await slow.stop()
    assert leaving <= 10
    assert {r.outcome for r in results} == {"accepted"}
