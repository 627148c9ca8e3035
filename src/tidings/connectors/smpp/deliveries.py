"""What the SMSC delivers to us: receipts and mobile-originated (MO) messages.

The deliver_sm_resp is sent only after the pipeline took the receipt or the
message durably, so a crash before that makes the SMSC deliver it again.

* Receipts are offered to the report sink in batches. One the sink refuses (its
  submit is not recorded yet: the receipt overtook our own bookkeeping) is held
  unanswered and offered again as soon as the dispatcher says the submit is
  recorded (``recorded``; at once if that came while the sink was reading), and in
  any case every ``HELD_RECHECK_SECONDS``. After
  ``HOLD_SECONDS`` it is acknowledged and dropped as unmatched (not ours, or
  from before the database was reset) so the SMSC stops sending it. A refused
  receipt is first shown to ``on_refused`` (the connector), which may find in it
  the answer a crash cut off (``resolution.py``); such a receipt is held up to
  ``RESOLVED_HOLD_SECONDS`` for the dispatcher to record that answer, however
  late a backlog makes it.
* MO parts (UDH or SAR concatenation) are put together, then offered to the
  inbound sink; the parts are answered when the whole message is stored. Parts
  still missing after ``ASSEMBLY_SECONDS`` do not hold the rest back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from tidings.connectors.base import (
    DeliveryReport,
    FinalReport,
    InboundMessage,
    InboundSink,
    ReportSink,
    refuse_inbound,
)
from tidings.connectors.smpp.addresses import from_smpp
from tidings.connectors.smpp.coding import read_message
from tidings.connectors.smpp.concat import PartAssembler
from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import DataSm, DeliverSm, Pdu
from tidings.connectors.smpp.receipts import is_delivery_receipt, receipt_from_deliver_sm
from tidings.core.logs import get_logger

log = get_logger("tidings.smpp")
BATCH = 500
GATHER_SECONDS = 0.005  # let a burst of receipts form one batch
HELD_RECHECK_SECONDS = 5.0
HOLD_SECONDS = 60.0
RESOLVED_HOLD_SECONDS = 3600.0
ASSEMBLY_SECONDS = 120.0
SINK_ERROR_PAUSE_SECONDS = 1.0


@dataclass
class _Receipt:
    link: Link
    pdu: Pdu
    report: DeliveryReport
    since: float = field(default_factory=time.monotonic)
    resolved: bool = False  # it resolved a submit whose answer a crash lost


# Whether a receipt the sink refused (its carrier id unknown) resolved a submit whose
# answer was lost: its deliver_sm and carrier id.
RefusedReceipt = Callable[[Pdu, str], bool]


@dataclass
class _Mo:
    message: InboundMessage
    answers: list[tuple[Link, Pdu]]


class Deliveries:
    def __init__(self, name: str, on_refused: RefusedReceipt | None = None) -> None:
        self._name = name
        self._on_refused = on_refused
        self._sink: ReportSink | None = None
        self._inbound: InboundSink = refuse_inbound
        self._receipts: list[_Receipt] = []
        self._held: dict[str, list[_Receipt]] = {}
        # Carrier ids recorded while the sink was looking at a batch: a receipt it refused
        # may have been read just before its submit committed, and goes again at once.
        self._recorded_during_offer: set[str] | None = None
        self._mo: list[_Mo] = []
        self._parts: PartAssembler[tuple[str, str, int], tuple[Link, Pdu]] = PartAssembler()
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.unmatched = 0  # receipts acknowledged without a message to apply them to
        self.applied = 0  # receipts the report sink took

    def counts(self) -> dict[str, int]:
        """Receipts by what became of them, for ``/metrics``."""
        return {"applied": self.applied, "unmatched": self.unmatched}

    def start(self, sink: ReportSink, inbound: InboundSink) -> None:
        self._sink, self._inbound = sink, inbound
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"smpp-{self._name}-deliveries")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        if self._recorded_during_offer is not None:
            self._recorded_during_offer.update(carrier_message_ids)
        for carrier_id in carrier_message_ids:
            held = self._held.pop(carrier_id, None)
            if held:
                self._receipts.extend(held)
                self._work.set()

    def on_request(self, link: Link, pdu: Pdu) -> None:
        if not isinstance(pdu, DeliverSm | DataSm):
            link.respond(pdu)
            return
        receipt = receipt_from_deliver_sm(pdu)
        if receipt is not None:
            carrier_id, status, error = receipt
            if status is None:  # not final (ENROUTE, ACCEPTD): nothing to apply
                link.respond(pdu)
                return
            report = DeliveryReport(carrier_id, cast(FinalReport, status), error)
            self._receipts.append(_Receipt(link, pdu, report))
        elif is_delivery_receipt(pdu.esm_class):
            link.respond(pdu)  # a receipt we cannot read: nothing to apply it to
            log.warning("smpp_receipt_unreadable", connector=self._name)
            return
        else:
            self._add_mo_part(link, pdu)
        self._work.set()

    # --- mobile-originated ------------------------------------------------------------

    def _add_mo_part(self, link: Link, pdu: DeliverSm | DataSm) -> None:
        short_message = pdu.short_message if isinstance(pdu, DeliverSm) else b""
        concat, text = read_message(short_message, pdu.esm_class, pdu.data_coding,
                                    pdu.optional)
        sender = from_smpp(pdu.source_addr_ton, pdu.source_addr)
        to = from_smpp(pdu.dest_addr_ton, pdu.destination_addr)
        if concat is None or concat.total <= 1:
            self._mo.append(_Mo(InboundMessage("sms", sender, to, text), [(link, pdu)]))
            return
        whole = self._parts.add((sender, to, concat.reference), concat, text, (link, pdu))
        if whole is not None:
            self._mo.append(_Mo(InboundMessage("sms", sender, to, whole[0]), whole[1]))

    def _flush_stale_parts(self) -> None:
        """Parts still missing do not hold the rest back: what came is stored."""
        for (sender, to, _), body, answers in self._parts.stale(ASSEMBLY_SECONDS):
            self._mo.append(_Mo(InboundMessage("sms", sender, to, body), answers))

    # --- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        next_recheck = time.monotonic() + HELD_RECHECK_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), HELD_RECHECK_SECONDS)
            self._work.clear()
            await asyncio.sleep(GATHER_SECONDS)
            now = time.monotonic()
            if now >= next_recheck:
                self._recheck_held(now)
                self._flush_stale_parts()
                next_recheck = now + HELD_RECHECK_SECONDS
            try:
                await self._offer_receipts()
                await self._offer_mo()
            except Exception:
                log.exception("smpp_sink_failed", connector=self._name)
                await asyncio.sleep(SINK_ERROR_PAUSE_SECONDS)
                self._work.set()

    async def _offer_receipts(self) -> None:
        while self._receipts and self._sink is not None:
            batch, self._receipts = self._receipts[:BATCH], self._receipts[BATCH:]
            recorded_meanwhile: set[str] = set()
            self._recorded_during_offer = recorded_meanwhile
            try:
                taken = await self._sink(self._name, [r.report for r in batch])
            except BaseException:
                self._receipts[:0] = batch
                raise
            finally:
                self._recorded_during_offer = None
            self.applied += sum(taken)
            for receipt, ok in zip(batch, taken, strict=True):
                carrier_id = receipt.report.carrier_message_id
                if ok:
                    receipt.link.respond(receipt.pdu)
                elif carrier_id in recorded_meanwhile:
                    self._receipts.append(receipt)
                else:
                    if self._on_refused is not None and self._on_refused(receipt.pdu,
                                                                         carrier_id):
                        receipt.resolved = True
                    self._held.setdefault(carrier_id, []).append(receipt)

    def _recheck_held(self, now: float) -> None:
        for carrier_id, receipts in list(self._held.items()):
            del self._held[carrier_id]
            for receipt in receipts:
                if now - receipt.since > (RESOLVED_HOLD_SECONDS if receipt.resolved
                                          else HOLD_SECONDS):
                    receipt.link.respond(receipt.pdu)
                    self.unmatched += 1
                    log.warning("smpp_receipt_unmatched", connector=self._name)
                else:
                    self._receipts.append(receipt)

    async def _offer_mo(self) -> None:
        while self._mo:
            batch, self._mo = self._mo[:BATCH], self._mo[BATCH:]
            try:
                taken = await self._inbound(self._name, [m.message for m in batch])
            except BaseException:
                self._mo[:0] = batch
                raise
            for mo, ok in zip(batch, taken, strict=True):
                if ok:
                    for link, pdu in mo.answers:
                        link.respond(pdu)
                else:
                    self._mo.append(mo)
            if not all(taken):
                await asyncio.sleep(SINK_ERROR_PAUSE_SECONDS)
                return
