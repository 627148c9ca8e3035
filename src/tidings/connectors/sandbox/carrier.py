"""The sandbox carrier: the default SMS connector, behaving like a real remote carrier.

It accepts messages, answers repeated submits of a ``message_id`` with the same result
(same carrier id, no second receipt), keeps everything in its own durable ledger
(``SandboxLedger``) and sends delivery receipts to the pipeline's sink after
``receipt_delay_seconds``, offering again every receipt the sink did not take.

Magic destination numbers choose the outcome:

==================  ==============================================================
``+12025550100``    accepted, receipt ``undelivered``, error ``sandbox_undelivered``
``+12025550101``    accepted, receipt ``failed``, error ``sandbox_failed``
``+12025550102``    accepted, receipt ``expired``, error ``sandbox_expired``
``+12025550103``    submit outcome ``rejected``, error ``sandbox_rejected``, no receipt
``+12025550104``    first attempt ``retry`` (error ``sandbox_throttled``,
                    ``retry_after_seconds=1.0``); later attempts accepted, receipt
                    ``delivered``
``+12025550105``    accepted, no receipt ever (the message stays sent)
any other number    accepted, receipt ``delivered``
==================  ==============================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast, get_args

from tidings.connectors.base import (
    DeliveryReport,
    FinalReport,
    InboundSink,
    OutboundMessage,
    ReportSink,
    SubmitOutcome,
    SubmitResult,
    refuse_inbound,
)
from tidings.connectors.sandbox.ledger import (
    Acceptance,
    DueReceipt,
    FirstAttempt,
    SandboxLedger,
    SubmissionRow,
)

logger = logging.getLogger(__name__)

RECEIPT_BATCH = 500  # receipts offered to the sink per round
THROTTLE_RETRY_AFTER_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0  # how long stop() lets a receipt round in flight finish
_FINAL_REPORTS: frozenset[str] = frozenset(get_args(FinalReport))


@dataclass(frozen=True)
class _Behaviour:
    """How the sandbox treats one destination number."""

    first_outcome: SubmitOutcome
    submit_error: str | None = None
    receipt_status: FinalReport | None = "delivered"
    receipt_error: str | None = None


def route_of(number: str) -> str:
    """What the ledger keeps of a destination: the magic number itself (a fictional
    test number), or ``"default"``. A hash of a real number would be reversible by
    trying every number, so none is kept."""
    number = number.strip()
    return number if number in _MAGIC_NUMBERS else "default"


_DEFAULT = _Behaviour("accepted")
_THROTTLED = _Behaviour("retry", submit_error="sandbox_throttled")
_MAGIC_NUMBERS: dict[str, _Behaviour] = {
    "+12025550100": _Behaviour("accepted", None, "undelivered", "sandbox_undelivered"),
    "+12025550101": _Behaviour("accepted", None, "failed", "sandbox_failed"),
    "+12025550102": _Behaviour("accepted", None, "expired", "sandbox_expired"),
    "+12025550103": _Behaviour("rejected", "sandbox_rejected", None, None),
    "+12025550104": _THROTTLED,
    "+12025550105": _Behaviour("accepted", None, None, None),
}


def _behaviour(route: str) -> _Behaviour:
    return _MAGIC_NUMBERS.get(route, _DEFAULT)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_carrier_id() -> str:
    return "SBX" + secrets.token_hex(10)


# The built-in carrier: always running, named in routes like any operator connector.
SANDBOX_NAME = "sandbox"
SANDBOX_CHANNELS = frozenset({"sms"})


class SandboxCarrier:
    """The built-in SMS carrier (implements ``tidings.connectors.base.Connector``).

    ``receipt_delay_seconds`` is how long after acceptance a receipt falls due;
    ``poll_seconds`` is the pause between receipt rounds; ``clock`` returns aware UTC
    datetimes (injected by tests to move time instead of sleeping).
    """

    def __init__(
        self,
        ledger: SandboxLedger,
        *,
        receipt_delay_seconds: float,
        name: str = SANDBOX_NAME,
        poll_seconds: float = 0.05,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if receipt_delay_seconds < 0:
            raise ValueError("receipt_delay_seconds must not be negative")
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.name = name
        self.channels: frozenset[str] = SANDBOX_CHANNELS
        self._ledger = ledger
        self._receipt_delay = timedelta(seconds=receipt_delay_seconds)
        self._poll_seconds = poll_seconds
        self._clock = clock or _utc_now
        self._sink: ReportSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._planned = asyncio.Event()  # a submit planned a receipt: recompute the sleep
        # Rounds never overlap, so the sink is not offered one receipt twice at once.
        self._round_lock = asyncio.Lock()

    async def attach(self, sink: ReportSink) -> None:
        """Open the ledger and take ``sink``, without the background loop (tests drive
        ``emit_due_receipts`` themselves)."""
        await self._ledger.open()
        self._sink = sink

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None:
        """Open the ledger and offer receipts to ``sink`` as they fall due (inbound
        sandbox messages come through ``tidings sandbox inbound`` instead)."""
        await self.attach(sink)
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-receipts")

    async def stop(self) -> None:
        """Stop the receipt loop and close the ledger; receipts still owed stay owed.

        A round in flight is let finish (up to ``STOP_GRACE_SECONDS``), so a receipt the
        sink just took is marked emitted rather than offered again after a restart.
        """
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            done, _ = await asyncio.wait([task], timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()
                # wait() rather than awaiting the task: a cancel of stop() still propagates.
                await asyncio.wait([task])
        self._sink = None
        await self._ledger.close()

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        """Nothing to do: receipts fall due after a delay, and a refused one is offered
        again in the next round."""

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        """Submit a batch in one ledger transaction; results in input order.

        Idempotent by ``message_id``: a repeated submit counts an attempt and answers
        from the stored row (same carrier id, no second receipt).
        """
        if not messages:
            return []
        now = self._clock()
        firsts = [self._first_attempt(message, now) for message in messages]
        rows = await self._ledger.record_submissions(firsts, now, self._promotion(now))
        self._planned.set()
        return [_result(rows[message.message_id]) for message in messages]

    async def emit_due_receipts(self) -> int:
        """Offer one batch of due receipts to the sink; returns how many it took.

        Taken receipts are marked emitted and never offered again; the rest are offered
        in a later round. An exception from the sink propagates, with nothing marked.
        """
        sink = self._sink
        if sink is None:
            raise RuntimeError("start() the carrier before emitting receipts")
        async with self._round_lock:
            due = await self._ledger.due_receipts(self._clock(), RECEIPT_BATCH)
            if not due:
                return 0
            verdicts = await sink(self.name, [_report(receipt) for receipt in due])
            taken, refused = self._split(due, verdicts)
            await self._ledger.settle_receipts(taken, refused, self._clock())
            return len(taken)

    async def stats(self) -> dict[str, int]:
        """Ledger counts: rows, accepted, resubmissions, receipts_pending, receipts_emitted."""
        return await self._ledger.stats()

    def _first_attempt(self, message: OutboundMessage, now: datetime) -> FirstAttempt:
        route = route_of(message.to)
        behaviour = _behaviour(route)
        acceptance = None
        if behaviour.first_outcome == "accepted":
            acceptance = self._acceptance(behaviour, now)
        return FirstAttempt(message.message_id, route, acceptance)

    def _acceptance(self, behaviour: _Behaviour, now: datetime) -> Acceptance:
        status = behaviour.receipt_status
        due = now + self._receipt_delay if status is not None else None
        return Acceptance(_new_carrier_id(), status, behaviour.receipt_error, due)

    def _promotion(self, now: datetime) -> Callable[[SubmissionRow], Acceptance | None]:
        def promote(row: SubmissionRow) -> Acceptance | None:
            # Only a throttled number turns into an acceptance, from its second attempt.
            behaviour = _behaviour(row.route)
            if behaviour.first_outcome != "retry" or row.attempts < 2:
                return None
            return self._acceptance(behaviour, now)

        return promote

    def _split(
        self, due: Sequence[DueReceipt], verdicts: Sequence[bool]
    ) -> tuple[list[str], list[str]]:
        if len(verdicts) != len(due):
            # A sink bug must not lose receipts: whatever it did not answer is offered again.
            logger.warning(
                "connector %s: sink answered %d verdicts for %d receipts",
                self.name,
                len(verdicts),
                len(due),
            )
        taken: list[str] = []
        refused: list[str] = []
        for index, receipt in enumerate(due):
            took = index < len(verdicts) and verdicts[index] is True
            (taken if took else refused).append(receipt.message_id)
        return taken, refused

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._drain()
            await self._sleep_until_next_receipt()

    async def _sleep_until_next_receipt(self) -> None:
        """Sleep until the next receipt is due, a submit plans one, or ``poll_seconds``."""
        delay = self._poll_seconds
        try:
            due = await self._ledger.next_due()
        except Exception as exc:
            logger.warning("connector %s: ledger look-up failed: %s", self.name,
                           type(exc).__name__)
            due = None
        if due is not None:
            delay = min(delay, max(0.0, (due - self._clock()).total_seconds()))
        waits = [asyncio.ensure_future(self._stopping.wait()),
                 asyncio.ensure_future(self._planned.wait())]
        await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        self._planned.clear()

    async def _stop_requested_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        return self._stopping.is_set()

    async def _drain(self) -> None:
        try:
            # A full batch taken means more may be waiting: go again without sleeping.
            while await self.emit_due_receipts() >= RECEIPT_BATCH:
                if self._stopping.is_set():
                    return
        except Exception as exc:
            # Only the type: a message could carry personal data. Retried next round.
            logger.warning("connector %s: receipt round failed: %s", self.name, type(exc).__name__)


def _result(row: SubmissionRow) -> SubmitResult:
    if row.accepted:
        return SubmitResult(row.message_id, "accepted", carrier_message_id=row.carrier_message_id)
    behaviour = _behaviour(row.route)
    if behaviour.first_outcome == "rejected":
        return SubmitResult(row.message_id, "rejected", error_code=behaviour.submit_error)
    return SubmitResult(
        row.message_id,
        "retry",
        error_code=behaviour.submit_error or _THROTTLED.submit_error,
        retry_after_seconds=THROTTLE_RETRY_AFTER_SECONDS,
    )


def _report(receipt: DueReceipt) -> DeliveryReport:
    status = receipt.status
    if status not in _FINAL_REPORTS:
        raise ValueError(f"ledger holds an unknown receipt status {status!r}")
    return DeliveryReport(receipt.carrier_message_id, cast(FinalReport, status), receipt.error_code)
