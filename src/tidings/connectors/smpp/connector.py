"""The SMPP connector: messages out as submit_sm over one or more binds to an SMSC.

* Each message is cut into parts (``coding.split_for_submit``); every part goes
  through the bind with the most room, within its window and the connector's rate.
* ESME_RTHROTTLED and ESME_RMSGQFUL pause that bind and send the part again
  (up to ``THROTTLE_RETRIES`` times, then the dispatcher retries later). Any other
  error status is permanent: the message is rejected with the SMSC's code, e.g.
  ``smpp:ESME_RINVDSTADR``.
* The carrier id of a message is the SMSC's id for its first part, and only that
  part asks for a delivery receipt: a receipt for another part would name an id
  nobody waits for (and, unmatched, hold a slot of the SMSC's window until it is
  given up on). Receipts that come for other parts anyway are acknowledged once
  given up on, and not applied.
* Before a message's submit_sm leaves, the ledger (``ledger.py``) records that it
  is leaving, with keyed digests of its addresses and text prefix; each answer is
  written there before the dispatcher hears it, so a repeated submit of a message
  id (a retry, or after a crash) gets the first answer again.
* After a restart, a message that left with no answer recorded is unknown: held
  (``retry`` with ``smpp_unknown_held``, looked at again four times in the window)
  for ``unknown_hold_seconds`` once bound again, while a receipt for a carrier
  id nobody knows may match it (``resolution.py``): a match
  records it as accepted with the receipt's id, and the receipt then applies.
  What is still unknown after the window is submitted again. A submit whose
  answer never came within a run (time-out, connection lost mid-window) is
  retried by the dispatcher at once: SMPP cannot tell whether the SMSC took it.
* No bind up: ``retry`` with ``UNAVAILABLE``, so the router tries the next
  connector of the route at once.

deliver_sm handling (receipts, mobile-originated messages) is in ``deliveries.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tidings.connectors.answers import SubmitOnce
from tidings.connectors.base import (
    UNAVAILABLE,
    InboundSink,
    OutboundMessage,
    ReportSink,
    SubmitResult,
    refuse_inbound,
)
from tidings.connectors.smpp.addresses import to_smpp
from tidings.connectors.smpp.client import BindTarget, SmppClient
from tidings.connectors.smpp.coding import SubmitPart, TextCoding, split_for_submit
from tidings.connectors.smpp.deliveries import Deliveries
from tidings.connectors.smpp.ledger import SubmitLedger
from tidings.connectors.smpp.link import Link, LinkClosed, ResponseTimeout
from tidings.connectors.smpp.matching import ReceiptMatcher
from tidings.connectors.smpp.pdu import CommandStatus, Pdu, SubmitSm
from tidings.connectors.smpp.resolution import HOLD_SECONDS, CrashResolution, nothing
from tidings.connectors.smpp.session import SessionConfig
from tidings.connectors.smpp.stats import (
    NO_ANSWER,
    SmppSnapshot,
    StatusCounts,
    status_name,
    window_in_use,
)
from tidings.core.logs import get_logger

log = get_logger("tidings.smpp")

THROTTLE_RETRIES = 5
THROTTLE_PAUSE_SECONDS = 1.0
BIND_WAIT_SECONDS = 1.0  # how long a submit waits for some bind to come up
_THROTTLING = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


@dataclass(frozen=True)
class SmppSettings:
    host: str
    port: int
    system_id: str
    password: str = field(repr=False, default="")
    system_type: str = ""
    binds: int = 1
    window: int = 10
    tps: float | None = None
    long_messages: Literal["udh", "sar", "payload"] = "udh"
    gsm7_coding: Literal["gsm7", "latin1"] = "gsm7"  # data_coding 0 or 3 for GSM-7 text
    registered_delivery: bool = True
    enquire_link_seconds: float = 30.0
    response_timeout_seconds: float = 60.0
    throttle_pause_seconds: float = THROTTLE_PAUSE_SECONDS

    def bind_target(self) -> BindTarget:
        per_bind_tps = self.tps / self.binds if self.tps else None
        session = SessionConfig(window=self.window, tps=per_bind_tps,
                                enquire_link_interval=self.enquire_link_seconds,
                                response_timeout=self.response_timeout_seconds)
        return BindTarget(self.host, self.port, self.system_id, self.password,
                          self.system_type, session=session)


class _Retry(Exception):
    def __init__(self, error_code: str, after: float | None = None) -> None:
        super().__init__(error_code)
        self.error_code, self.after = error_code, after


class _Rejected(Exception):
    def __init__(self, error_code: str) -> None:
        super().__init__(error_code)
        self.error_code = error_code


class SmppConnector:
    channels = frozenset({"sms"})

    def __init__(self, name: str, settings: SmppSettings, *,
                 ledger_path: Path | None = None, match_key: bytes | None = None,
                 unknown_hold_seconds: float = HOLD_SECONDS) -> None:
        """``match_key`` (with a ledger) turns on the record of leaving submits and the
        resolution of unknown ones after a crash; it must not be kept in the ledger."""
        self.name, self.settings = name, settings
        self._ledger = SubmitLedger(ledger_path) if ledger_path else None
        self._once = SubmitOnce()
        self._resolution = None if self._ledger is None or not match_key else CrashResolution(
            name, self._ledger, ReceiptMatcher(match_key), window=settings.binds * settings.window,
            hold_seconds=unknown_hold_seconds, record=self._record, remember=self._once.remember)
        self._deliveries = Deliveries(name, on_refused=None if self._resolution is None
                                      else self._resolution.on_refused)
        self._clients = [SmppClient(settings.bind_target(), name=f"{name}#{i}",
                                    on_request=self._deliveries.on_request,
                                    on_late_answer=self._late_answer)
                         for i in range(settings.binds)]
        self._late_writes: set[asyncio.Task[None]] = set()
        self._submits = StatusCounts()
        self._next_reference = secrets.randbelow(0x10000)

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None:
        if self._ledger is not None:
            await self._ledger.open()
        if self._resolution is not None:
            await self._resolution.load()
        self._deliveries.start(sink, inbound)
        for client in self._clients:
            client.start()

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self._clients))
        await self._deliveries.stop()
        await asyncio.gather(*self._late_writes, return_exceptions=True)
        if self._resolution is not None:
            await self._resolution.settle()
        if self._ledger is not None:
            await self._ledger.close()

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        self._deliveries.recorded(carrier_message_ids)

    @property
    def ledger_commits(self) -> int:
        """Group writes of the ledger so far (one fsync each), for bench/."""
        return 0 if self._ledger is None else self._ledger.commits

    @property
    def bound_links(self) -> list[Link]:
        return [link for c in self._clients if (link := c.link) is not None]

    def smpp_snapshot(self) -> SmppSnapshot:
        """Binds, window and counts for ``/metrics``."""
        links = self.bound_links
        return SmppSnapshot(binds=len(links), window_in_use=window_in_use(links),
                            by_status=self._submits.by_name(),
                            deliveries=self._deliveries.counts())

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        unknown = [m.message_id for m in messages if self._once.known(m.message_id) is None]
        if self._ledger is not None and unknown:
            for result in (await self._ledger.known(unknown)).values():
                self._once.remember(result)
        # One task per message (the submit itself), gathered shielded: a dispatcher
        # cancelled mid-batch does not cut the submits off.
        answers = [self._once.start(m.message_id,
                                    functools.partial(self._submit_and_record, m))
                   for m in messages]
        return list(await asyncio.shield(asyncio.gather(*answers)))

    async def _submit_and_record(self, message: OutboundMessage) -> SubmitResult:
        """The SMSC's answer, on disk before anyone hears it.

        If the ledger cannot write, the answer still goes to the dispatcher, which
        stores it with the message: failing the batch instead would run it again
        after its lease and send what the SMSC already took.
        """
        resolution = self._resolution
        if resolution is not None:
            held = await resolution.held(message.message_id, self._bind_wait)
            if held is not None:
                return held
        result = await self._submit(message)
        if resolution is not None:
            resolution.answered(result)
        if result.outcome != "retry":
            await self._record(result)
        return result

    async def _bind_wait(self, message_id: str) -> SubmitResult | None:
        try:
            await self._roomiest_link()
        except _Retry as exc:
            return SubmitResult(message_id, "retry", error_code=exc.error_code)
        return None

    async def _record(self, result: SubmitResult) -> None:
        if self._ledger is None:
            return
        try:
            await self._ledger.record(result)
        except (OSError, sqlite3.Error, RuntimeError):
            log.exception("smpp_ledger_write_failed", connector=self.name)

    async def _submit(self, message: OutboundMessage) -> SubmitResult:
        try:
            parts = self._parts(message)
        except ValueError:
            return SubmitResult(message.message_id, "rejected", error_code="smpp_unencodable")
        sent = nothing if self._resolution is None else \
            await self._resolution.write_ahead(message)
        try:
            ids = await self._submit_parts(message, parts, sent)
        except _Rejected as exc:
            return SubmitResult(message.message_id, "rejected", error_code=exc.error_code)
        except _Retry as exc:
            return SubmitResult(message.message_id, "retry", error_code=exc.error_code,
                                retry_after_seconds=exc.after)
        finally:
            sent()
        return SubmitResult(message.message_id, "accepted", carrier_message_id=ids[0])

    async def _submit_parts(self, message: OutboundMessage, parts: list[SubmitPart],
                            sent: Callable[[], None]) -> list[str]:
        """Each part's message id (``sent`` called when one has its place in a window).
        The parts of a long message go without waiting for each other's answers: an
        SMSC may answer none until it has them all (Tidings' own gateway does), and one
        round trip per part would be slow anyway."""
        receipts = self.settings.registered_delivery
        if len(parts) == 1:
            return [await self._submit_part(message, parts[0], receipt=receipts, sent=sent)]
        answers = await asyncio.gather(
            *(self._submit_part(message, part, receipt=receipts and number == 0, sent=sent)
              for number, part in enumerate(parts)), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return [str(answer) for answer in answers]

    def _parts(self, message: OutboundMessage) -> list[SubmitPart]:
        self._next_reference = (self._next_reference + 1) & 0xFFFF
        for coding in self._codings(message):
            with contextlib.suppress(ValueError):  # this coding cannot carry the text
                return split_for_submit(message.body, coding=coding,
                                        reference=self._next_reference,
                                        long_mode=self.settings.long_messages)
        raise ValueError("no data_coding carries this text")

    def _codings(self, message: OutboundMessage) -> list[TextCoding]:
        """GSM-7 text as the SMSC wants it (GSM-7, or Latin-1 where it can), else UCS-2."""
        if message.encoding != "GSM-7":
            return ["ucs2"]
        return ["latin1", "ucs2"] if self.settings.gsm7_coding == "latin1" else ["gsm7", "ucs2"]

    async def _submit_part(self, message: OutboundMessage, part: SubmitPart, *,
                           receipt: bool, sent: Callable[[], None]) -> str:
        pdu = self._submit_sm(message, part, receipt=receipt)
        # A lone part is the whole message: its late answer (after a time-out) is its answer.
        tag = message.message_id if not part.esm_class & 0x40 and \
            part.optional.sar_total_segments is None else None
        for _ in range(THROTTLE_RETRIES):
            link = await self._roomiest_link()
            try:
                response = await link.request(pdu, tag=tag, on_sent=sent)
            except (LinkClosed, ResponseTimeout) as exc:
                self._submits.count(NO_ANSWER)
                raise _Retry(f"smpp_{type(exc).__name__.lower()}") from None
            status = response.command_status
            self._submits.count(status)
            if status == CommandStatus.ESME_ROK:
                return str(getattr(response, "message_id", ""))
            if status in _THROTTLING:
                link.pause(self.settings.throttle_pause_seconds)
                continue
            raise _Rejected(f"smpp:{status_name(status)}")
        raise _Retry("smpp:ESME_RTHROTTLED", after=self.settings.throttle_pause_seconds)

    async def _roomiest_link(self) -> Link:
        links = self.bound_links
        if not links:
            await asyncio.wait([asyncio.ensure_future(c.wait_change(BIND_WAIT_SECONDS))
                                for c in self._clients], return_when=asyncio.FIRST_COMPLETED)
            links = self.bound_links
        if not links:
            raise _Retry(UNAVAILABLE)
        return min(links, key=lambda link: link.session.outstanding)

    def _submit_sm(self, message: OutboundMessage, part: SubmitPart, *,
                   receipt: bool) -> SubmitSm:
        dest_ton, dest_npi, destination = to_smpp(message.to)
        source_ton, source_npi, source = to_smpp(message.sender)
        return SubmitSm(
            sequence_number=0, source_addr_ton=source_ton, source_addr_npi=source_npi,
            source_addr=source, dest_addr_ton=dest_ton, dest_addr_npi=dest_npi,
            destination_addr=destination, esm_class=part.esm_class,
            registered_delivery=1 if receipt else 0,
            data_coding=part.data_coding, short_message=part.short_message,
            optional=part.optional)

    def _late_answer(self, message_id: str, response: Pdu) -> None:
        """The SMSC took a submit we had given up waiting for: keep its answer, so the
        dispatcher's retry gets it instead of sending the message again."""
        if response.command_status != CommandStatus.ESME_ROK or self._once.known(message_id):
            return
        result = SubmitResult(message_id, "accepted",
                              carrier_message_id=str(getattr(response, "message_id", "")))
        self._once.remember(result)
        task = asyncio.create_task(self._record(result))
        self._late_writes.add(task)
        task.add_done_callback(self._late_writes.discard)
