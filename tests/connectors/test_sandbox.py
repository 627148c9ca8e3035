"""The sandbox carrier and its ledger, on real SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tidings.connectors.base import Connector, DeliveryReport, FinalReport, OutboundMessage
from tidings.connectors.sandbox.carrier import RECEIPT_BATCH, SandboxCarrier
from tidings.connectors.sandbox.ledger import SandboxLedger
from tidings.core.clock import FakeClock

PG_URL = os.environ.get("TIDINGS_TEST_POSTGRES_URL", "")
DELAY = 5.0
NEVER = 3600.0  # poll interval that keeps the background loop out of a test's way

UNDELIVERED = "+12025550100"
FAILED = "+12025550101"
EXPIRED = "+12025550102"
REJECTED = "+12025550103"
THROTTLED = "+12025550104"
SILENT = "+12025550105"
ORDINARY = "+14155550199"

LedgerFactory = Callable[[], SandboxLedger]


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="TIDINGS_TEST_POSTGRES_URL not set"),
            ],
        ),
    ]
)
async def make_ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LedgerFactory]:
    """Opens ledgers on one fresh database (same data each time, as after a restart)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox-carrier.db'}"
        yield lambda: SandboxLedger(url)
        return
    schema = f"sandbox_test_{secrets.token_hex(6)}"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield lambda: SandboxLedger(PG_URL, schema=schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Sink:
    """A report sink that records what it was offered and answers per ``verdict``."""

    def __init__(self, verdict: Callable[[DeliveryReport], bool] = lambda _r: True) -> None:
        self.verdict = verdict
        self.offered: list[DeliveryReport] = []
        self.taken: list[DeliveryReport] = []
        self.failures = 0  # raise on the next this-many calls

    async def __call__(self, connector: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        assert connector == "sandbox"
        self.offered.extend(reports)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("sink down")
        verdicts = [self.verdict(report) for report in reports]
        self.taken.extend(r for r, ok in zip(reports, verdicts, strict=True) if ok)
        return verdicts


@pytest.fixture
async def carrier(make_ledger: LedgerFactory, clock: FakeClock) -> AsyncIterator[SandboxCarrier]:
    sandbox = SandboxCarrier(
        make_ledger(), receipt_delay_seconds=DELAY, poll_seconds=NEVER, clock=clock.now
    )
    yield sandbox
    await sandbox.stop()


def msg(to: str = ORDINARY, message_id: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id or f"msg_{secrets.token_hex(8)}",
        channel="sms",
        to=to,
        sender="Tidings",
        body="hello",
        encoding="GSM-7",
        num_segments=1,
    )


async def started(carrier: SandboxCarrier, sink: Sink | None = None) -> Sink:
    """Give the carrier its sink without the background loop: the test emits receipts."""
    sink = sink or Sink()
    await carrier.attach(sink)
    return sink


# --- submit outcomes ---------------------------------------------------------------------


def test_sandbox_carrier_is_a_connector(carrier: SandboxCarrier) -> None:
    connector: Connector = carrier
    assert connector.name == "sandbox"
    assert connector.channels == frozenset({"sms"})


async def test_ordinary_number_is_accepted_and_delivered(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    message = msg(ORDINARY)
    [result] = await carrier.submit([message])
    assert result.message_id == message.message_id
    assert result.outcome == "accepted"
    assert result.carrier_message_id is not None
    assert result.carrier_message_id.startswith("SBX")
    assert len(result.carrier_message_id) == 23
    int(result.carrier_message_id[3:], 16)  # hex
    assert result.error_code is None

    clock.advance(DELAY)
    assert await carrier.emit_due_receipts() == 1
    assert sink.taken == [DeliveryReport(result.carrier_message_id, "delivered", None)]


@pytest.mark.parametrize(
    ("number", "status", "error"),
    [
        (UNDELIVERED, "undelivered", "sandbox_undelivered"),
        (FAILED, "failed", "sandbox_failed"),
        (EXPIRED, "expired", "sandbox_expired"),
    ],
)
async def test_magic_numbers_plan_their_final_receipt(
    carrier: SandboxCarrier, clock: FakeClock, number: str, status: FinalReport, error: str
) -> None:
    sink = await started(carrier)
    [result] = await carrier.submit([msg(number)])
    assert result.outcome == "accepted"
    assert result.carrier_message_id is not None

    clock.advance(DELAY)
    assert await carrier.emit_due_receipts() == 1
    assert sink.taken == [DeliveryReport(result.carrier_message_id, status, error)]


async def test_rejected_number_is_rejected_without_receipt(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    message = msg(REJECTED)
    [first] = await carrier.submit([message])
    assert first.outcome == "rejected"
    assert first.error_code == "sandbox_rejected"
    assert first.carrier_message_id is None

    [again] = await carrier.submit([message])
    assert again == first
    clock.advance(DELAY * 100)
    assert await carrier.emit_due_receipts() == 0
    assert sink.offered == []
    stats = await carrier.stats()
    assert stats["rows"] == 1
    assert stats["accepted"] == 0
    assert stats["receipts_pending"] == 0


async def test_throttled_number_asks_for_retry_then_accepts(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    message = msg(THROTTLED)
    [first] = await carrier.submit([message])
    assert first.outcome == "retry"
    assert first.error_code == "sandbox_throttled"
    assert first.retry_after_seconds == 1.0
    assert first.carrier_message_id is None

    clock.advance(1.0)
    [second] = await carrier.submit([message])
    assert second.outcome == "accepted"
    assert second.carrier_message_id is not None
    [third] = await carrier.submit([message])
    assert third == second

    clock.advance(DELAY)
    assert await carrier.emit_due_receipts() == 1
    assert sink.taken == [DeliveryReport(second.carrier_message_id, "delivered", None)]
    stats = await carrier.stats()
    assert stats["rows"] == 1
    assert stats["resubmissions"] == 2


async def test_silent_number_never_gets_a_receipt(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    [result] = await carrier.submit([msg(SILENT)])
    assert result.outcome == "accepted"
    assert result.carrier_message_id is not None
    clock.advance(DELAY * 1000)
    assert await carrier.emit_due_receipts() == 0
    assert sink.offered == []
    stats = await carrier.stats()
    assert stats["accepted"] == 1
    assert stats["receipts_pending"] == 0
    assert stats["receipts_emitted"] == 0


async def test_mixed_batch_answers_in_input_order(carrier: SandboxCarrier) -> None:
    numbers = [ORDINARY, REJECTED, THROTTLED, SILENT, UNDELIVERED, ORDINARY]
    messages = [msg(n) for n in numbers]
    results = await carrier.submit(messages)
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert [r.outcome for r in results] == [
        "accepted",
        "rejected",
        "retry",
        "accepted",
        "accepted",
        "accepted",
    ]
    carrier_ids = [r.carrier_message_id for r in results if r.outcome == "accepted"]
    assert len(set(carrier_ids)) == 4


async def test_empty_batch_returns_nothing_and_writes_nothing(carrier: SandboxCarrier) -> None:
    assert await carrier.submit([]) == []
    assert (await carrier.stats())["rows"] == 0


# --- idempotency -------------------------------------------------------------------------


async def test_resubmit_returns_same_result_and_plans_one_receipt(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    message = msg(ORDINARY)
    [first] = await carrier.submit([message])
    clock.advance(1.0)
    [second] = await carrier.submit([message])
    [third] = await carrier.submit([message])
    assert first == second == third

    clock.advance(DELAY)
    assert await carrier.emit_due_receipts() == 1
    [again_after_receipt] = await carrier.submit([message])
    assert again_after_receipt == first
    clock.advance(DELAY * 10)
    assert await carrier.emit_due_receipts() == 0
    assert len(sink.offered) == 1
    stats = await carrier.stats()
    assert stats == {
        "rows": 1,
        "accepted": 1,
        "resubmissions": 3,
        "receipts_pending": 0,
        "receipts_emitted": 1,
    }


async def test_duplicate_within_one_batch_is_one_row(carrier: SandboxCarrier) -> None:
    message = msg(ORDINARY)
    results = await carrier.submit([message, message])
    assert results[0] == results[1]
    stats = await carrier.stats()
    assert stats["rows"] == 1
    assert stats["resubmissions"] == 1


async def test_concurrent_submits_of_one_message_make_one_row(
    carrier: SandboxCarrier,
) -> None:
    message = msg(ORDINARY)
    answers = await asyncio.gather(*(carrier.submit([message]) for _ in range(8)))
    carrier_ids = {results[0].carrier_message_id for results in answers}
    assert len(carrier_ids) == 1
    assert None not in carrier_ids
    stats = await carrier.stats()
    assert stats["rows"] == 1
    assert stats["resubmissions"] == 7
    assert stats["receipts_pending"] == 1


async def test_concurrent_overlapping_batches_agree(carrier: SandboxCarrier) -> None:
    messages = [msg(ORDINARY) for _ in range(20)]
    batches = [messages, list(reversed(messages)), messages[5:15]]
    answers = await asyncio.gather(*(carrier.submit(batch) for batch in batches))
    by_message: dict[str, set[str | None]] = {}
    for results in answers:
        for result in results:
            by_message.setdefault(result.message_id, set()).add(result.carrier_message_id)
    assert all(len(ids) == 1 for ids in by_message.values())
    assert (await carrier.stats())["rows"] == 20


async def test_reopened_ledger_still_dedupes(make_ledger: LedgerFactory, clock: FakeClock) -> None:
    message = msg(ORDINARY)
    before = SandboxCarrier(make_ledger(), receipt_delay_seconds=DELAY, clock=clock.now)
    [first] = await before.submit([message])
    await before.stop()  # the process ends

    after = SandboxCarrier(make_ledger(), receipt_delay_seconds=DELAY, clock=clock.now)
    try:
        [again] = await after.submit([message])
        assert again == first
        stats = await after.stats()
        assert stats["rows"] == 1
        assert stats["resubmissions"] == 1
        assert stats["receipts_pending"] == 1
    finally:
        await after.stop()


# --- receipts ----------------------------------------------------------------------------


async def test_receipt_is_not_emitted_before_it_is_due(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    await carrier.submit([msg(ORDINARY)])
    assert await carrier.emit_due_receipts() == 0
    clock.advance(DELAY - 0.1)
    assert await carrier.emit_due_receipts() == 0
    assert sink.offered == []
    clock.advance(0.1)
    assert await carrier.emit_due_receipts() == 1


async def test_refused_receipt_is_offered_again_and_taken_one_never_again(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier, Sink(lambda _r: False))
    [result] = await carrier.submit([msg(ORDINARY)])
    clock.advance(DELAY)

    assert await carrier.emit_due_receipts() == 0
    assert await carrier.emit_due_receipts() == 0
    assert len(sink.offered) == 2
    assert (await carrier.stats())["receipts_pending"] == 1

    sink.verdict = lambda _r: True
    assert await carrier.emit_due_receipts() == 1
    assert [r.carrier_message_id for r in sink.taken] == [result.carrier_message_id]
    clock.advance(DELAY * 10)
    assert await carrier.emit_due_receipts() == 0
    assert len(sink.offered) == 3
    stats = await carrier.stats()
    assert stats["receipts_pending"] == 0
    assert stats["receipts_emitted"] == 1


async def test_partly_taken_batch_keeps_only_the_refused(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier, Sink(lambda r: r.status == "delivered"))
    await carrier.submit([msg(ORDINARY), msg(FAILED), msg(ORDINARY)])
    clock.advance(DELAY)
    assert await carrier.emit_due_receipts() == 2
    sink.offered.clear()
    assert await carrier.emit_due_receipts() == 0
    assert [r.status for r in sink.offered] == ["failed"]


async def test_sink_that_raises_loses_no_receipt(carrier: SandboxCarrier, clock: FakeClock) -> None:
    sink = Sink()
    sink.failures = 1
    await started(carrier, sink)
    [result] = await carrier.submit([msg(ORDINARY)])
    clock.advance(DELAY)

    with pytest.raises(RuntimeError, match="sink down"):
        await carrier.emit_due_receipts()
    assert (await carrier.stats())["receipts_pending"] == 1
    assert await carrier.emit_due_receipts() == 1
    assert [r.carrier_message_id for r in sink.taken] == [result.carrier_message_id]


async def test_sink_answering_too_few_verdicts_keeps_the_rest(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    async def short_sink(_name: str, reports: Sequence[DeliveryReport]) -> list[bool]:
        return [True] * (len(reports) - 1)

    await carrier.start(short_sink)
    await carrier.submit([msg(ORDINARY), msg(ORDINARY)])
    clock.advance(DELAY)
    assert await carrier.emit_due_receipts() == 1
    assert (await carrier.stats())["receipts_pending"] == 1


async def test_receipts_come_oldest_first_in_bounded_rounds(
    carrier: SandboxCarrier, clock: FakeClock
) -> None:
    sink = await started(carrier)
    [oldest] = await carrier.submit([msg(ORDINARY)])
    clock.advance(1.0)
    await carrier.submit([msg(ORDINARY) for _ in range(RECEIPT_BATCH + 50)])
    clock.advance(DELAY)

    assert await carrier.emit_due_receipts() == RECEIPT_BATCH
    assert sink.taken[0].carrier_message_id == oldest.carrier_message_id
    assert await carrier.emit_due_receipts() == 51
    assert await carrier.emit_due_receipts() == 0


async def test_emit_before_start_is_an_error(carrier: SandboxCarrier) -> None:
    with pytest.raises(RuntimeError, match="start"):
        await carrier.emit_due_receipts()


# --- the background loop -----------------------------------------------------------------


async def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_loop_delivers_and_survives_a_failing_sink(
    make_ledger: LedgerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = SandboxCarrier(make_ledger(), receipt_delay_seconds=0.0, poll_seconds=0.01)
    sink = Sink()
    sink.failures = 2
    await sandbox.start(sink)
    try:
        [result] = await sandbox.submit([msg(ORDINARY)])
        await _wait_for(lambda: len(sink.taken) == 1)
        assert sink.taken[0].carrier_message_id == result.carrier_message_id
        assert len(sink.offered) == 3
        assert "RuntimeError" in caplog.text
        assert ORDINARY not in caplog.text
        assert "sink down" not in caplog.text  # exception messages may hold personal data
    finally:
        await sandbox.stop()
    # stop() let the round finish: what the sink took is marked, not offered after a restart.
    try:
        assert (await sandbox.stats())["receipts_emitted"] == 1
    finally:
        await sandbox.stop()


async def test_stop_is_clean_and_idempotent(make_ledger: LedgerFactory) -> None:
    sandbox = SandboxCarrier(make_ledger(), receipt_delay_seconds=0.0, poll_seconds=0.01)
    await sandbox.stop()  # never started
    await sandbox.start(Sink())
    await asyncio.sleep(0.05)
    await sandbox.stop()
    await sandbox.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "sandbox-receipts"]


def test_invalid_timings_are_refused(tmp_path: Path) -> None:
    ledger = SandboxLedger(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ValueError, match="receipt_delay_seconds"):
        SandboxCarrier(ledger, receipt_delay_seconds=-1.0)
    with pytest.raises(ValueError, match="poll_seconds"):
        SandboxCarrier(ledger, receipt_delay_seconds=0.0, poll_seconds=0.0)


# --- privacy -----------------------------------------------------------------------------


async def test_ledger_file_holds_no_clear_number(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sandbox-carrier.db"
    sandbox = SandboxCarrier(
        SandboxLedger(f"sqlite+aiosqlite:///{path}"), receipt_delay_seconds=0.0, clock=clock.now
    )
    numbers = [ORDINARY, THROTTLED, REJECTED, UNDELIVERED]
    await sandbox.submit([msg(n) for n in numbers])
    await sandbox.submit([msg(THROTTLED, message_id="again"), msg(THROTTLED, message_id="again")])
    await sandbox.stop()

    files = [p for p in tmp_path.iterdir() if p.name.startswith("sandbox-carrier.db")]
    assert files
    data = b"".join(p.read_bytes() for p in files)
    assert b"sandbox_submissions" in data  # we are reading the right file
    # Magic numbers are fictional and kept as the route; a real number leaves no trace,
    # not even a hash (a hash of a phone number is reversible by trying them all).
    assert ORDINARY.encode() not in data
    assert ORDINARY.lstrip("+").encode() not in data
    assert hashlib.sha256(ORDINARY.encode()).hexdigest().encode() not in data


async def test_loop_wakes_for_a_receipt_due_before_its_next_poll(
        make_ledger: LedgerFactory) -> None:
    # A poll of an hour: only the wake-up planned by submit() can deliver in time.
    sandbox = SandboxCarrier(make_ledger(), receipt_delay_seconds=0.05, poll_seconds=3600)
    sink = Sink()
    await sandbox.start(sink)
    try:
        await sandbox.submit([msg(ORDINARY)])
        for _ in range(200):  # bounded wait, not a timing assertion
            if sink.offered:
                break
            await asyncio.sleep(0.02)
        assert len(sink.offered) == 1
    finally:
        await sandbox.stop()
