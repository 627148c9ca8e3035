"""The bundled SMSC simulator: an SMPP 3.4 server for development, tests and benchmarks.

``SmscSimulator`` accepts binds (any credentials, or the ones ``SimulatorBehaviour``
requires), answers submit_sm with a fresh message id and, ``receipt_delay`` seconds
later, sends a delivery receipt on a receiving bind (receiver or transceiver) of the
submitter's system_id. A receipt waits while no such bind is up, and goes again until
it is answered ESME_ROK (``receipt_retry_delay`` after an attempt that got no answer or
an error). ``inject_mo`` sends mobile-originated messages the same way
(``simulator_http`` offers it, ``stats`` and ``submits`` over HTTP). data_sm and
query_sm are not simulated: they are answered ESME_RINVCMDID.

The destination chooses the outcome. Only the fictional 555-01xx numbers are magic
(the sandbox carrier's +12025550100 and the like, matched by their last seven digits),
so that benchmarks with random destinations never hit one by chance:

=============  ==================================================================
ends in        outcome
=============  ==================================================================
``5550100``    accepted; receipt ``UNDELIV`` (message_state UNDELIVERABLE, err 001)
``5550101``    accepted; receipt ``REJECTD`` (message_state REJECTED, err 013)
``5550102``    accepted; receipt ``EXPIRED`` (message_state EXPIRED, err 027)
``5550103``    submit_sm_resp ``ESME_RINVDSTADR``: refused for good, no receipt
``5550104``    the first submit to the number gets ``ESME_RTHROTTLED``; later ones
               are accepted, receipt ``DELIVRD``
``5550105``    accepted; never a receipt
anything else  accepted; receipt ``DELIVRD`` (message_state DELIVERED, err 000)
=============  ==================================================================

A receipt carries both forms: esm_class 0x04 with the Appendix B text in short_message,
and the TLVs receipted_message_id, message_state and, for failures, network_error_code
(GSM network type 3, the err code above). registered_delivery 1 asks for every receipt,
2 for failure receipts only.

Trouble on demand (``SimulatorBehaviour``), for the other destinations:
``throttle_ratio`` of the submits are answered ESME_RTHROTTLED and ``reject_ratio``
ESME_RINVDSTADR, drawn from a generator seeded with ``seed`` (the same submits in the
same order get the same answers); ``disconnect_after`` N closes the connection at the Nth
submit of each bind, leaving it unanswered (an SMSC crash mid-window); ``window_delay``
holds every answer back, so that ESME windows fill up; ``swallow_answers`` N takes the
first N submits that would be accepted (counted, receipt sent) but never answers them,
as if the answer were lost in the ESME's crash.

The knobs, the outcomes and the submit records live in ``simulator_control``; import
them from here. The HTTP control API (``ControlServer``) lives in ``simulator_http``,
which imports this module: this one does not import it back.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tidings.connectors.smpp.coding import message_octets
from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import CommandStatus, DeliverSm, Pdu, SubmitSm
from tidings.connectors.smpp.session import (
    BindRequested,
    Bound,
    Event,
    RequestAbandoned,
    RequestTimedOut,
    ResponseReceived,
    Session,
    SessionConfig,
)
from tidings.connectors.smpp.simulator_control import (
    MAGIC_OUTCOMES,
    Outcome,
    OutcomePicker,
    SimulatorBehaviour,
    SubmitRecord,
    mo_deliver_sms,
    receipt_deliver_sm,
    wants_receipt,
)

__all__ = [
    "MAGIC_OUTCOMES", "SIMULATOR_SYSTEM_ID", "Outcome", "SimulatorBehaviour",
    "SmscSimulator", "SubmitRecord", "mo_deliver_sms", "receipt_deliver_sm",
]  # fmt: skip

SIMULATOR_SYSTEM_ID = "TidingsSim"  # what bind_resp calls us
SUBMITS_KEPT = 100_000  # the most recent accepted submits ``submits`` lists
BATCH_SLACK_SECONDS = 0.002  # a timer releases what falls due this soon after it, too
_MESSAGE_ID_MASK = (1 << 48) - 1  # 12 hex digits
_OK = CommandStatus.ESME_ROK

T = TypeVar("T")


class _Timeline(Generic[T]):
    """Items released in batches when due, by one loop timer: no task or timer per item."""

    def __init__(self, release: Callable[[list[T]], None]) -> None:
        self._release = release
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()  # keeps items of equal due time in FIFO order
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, delay: float, item: T) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        heapq.heappush(self._heap, (due, next(self._order), item))
        if self._timer is None or due < self._timer_at:
            self._arm(loop)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self.cancel()
        if self._heap:
            self._timer_at = self._heap[0][0]
            self._timer = loop.call_at(self._timer_at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        until, heap, due = loop.time() + BATCH_SLACK_SECONDS, self._heap, []
        while heap and heap[0][0] <= until:
            due.append(heapq.heappop(heap)[2])
        self._arm(loop)
        if due:
            self._release(due)


@dataclass
class _Tally:
    """deliver_sm of one kind (receipts, MO parts): how many were queued, sent and so on."""

    queued: int = 0
    sent: int = 0  # every attempt
    retried: int = 0  # attempts after the first
    acknowledged: int = 0  # answered ESME_ROK

    def stats(self, prefix: str) -> dict[str, int]:
        return {f"{prefix}_sent": self.sent, f"{prefix}_retried": self.retried,
                f"{prefix}_acknowledged": self.acknowledged,
                f"{prefix}_pending": self.queued - self.acknowledged}


@dataclass(slots=True, eq=False)
class _Delivery:
    """A deliver_sm on its way; ``system_id`` None: any receiving bind may take it."""

    pdu: DeliverSm
    system_id: str | None
    tally: _Tally
    attempts: int = 0


@dataclass(eq=False)
class _Bind:
    """One connection, and once bound, who is on it."""

    link: Link
    writer: asyncio.StreamWriter
    system_id: str = ""
    submits: int = 0
    dropped: bool = False
    pump_due: bool = False
    in_flight: dict[int, _Delivery] = field(default_factory=dict)  # by sequence number


@dataclass
class _Counters:
    binds: int = 0
    binds_refused: int = 0
    submits: int = 0
    submits_accepted: int = 0
    duplicates: int = 0
    disconnects: int = 0
    swallowed: int = 0
    submit_errors: Counter[int] = field(default_factory=Counter)


class SmscSimulator:
    """An SMPP 3.4 SMSC on the running event loop; see the module docstring."""

    def __init__(self, behaviour: SimulatorBehaviour | None = None) -> None:
        self.behaviour = behaviour = behaviour or SimulatorBehaviour()
        self._outcomes = OutcomePicker(behaviour)
        # A deliver_sm unanswered for receipt_retry_delay times out and goes again.
        self._session_config = SessionConfig(window=behaviour.window,
                                             response_timeout=behaviour.receipt_retry_delay)
        self._server: asyncio.Server | None = None
        self._binds: dict[Link, _Bind] = {}
        self._no_binds = asyncio.Event()
        self._receivers: dict[str, list[_Bind]] = defaultdict(list)
        self._mailboxes: dict[str | None, deque[_Delivery]] = defaultdict(deque)
        self._answers_due: _Timeline[tuple[_Bind, SubmitSm, Outcome]] = _Timeline(
            self._answer_all)
        self._receipts_due: _Timeline[tuple[SubmitRecord, Outcome]] = _Timeline(
            self._release_receipts)
        self._retries_due: _Timeline[_Delivery] = _Timeline(self._post)
        self._submits: deque[SubmitRecord] = deque(maxlen=SUBMITS_KEPT)
        self._fingerprints: set[int] = set()  # of accepted submits, to count duplicates
        self._next_message_id = secrets.randbits(48)  # unique per run, not per seed
        self._next_reference = secrets.randbelow(0x100)
        self._counters, self._receipts, self._mo = _Counters(), _Tally(), _Tally()

    # --- the Python API ----------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listens on ``host``:``port`` (0: a free port); returns the port it got."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stops listening and unbinds every client; receipts not yet sent stay pending."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await asyncio.gather(*(link.unbind() for link in list(self._binds)))
        if self._binds:
            await self._no_binds.wait()
        for timeline in (self._answers_due, self._receipts_due, self._retries_due):
            timeline.cancel()
        if server is not None:
            await server.wait_closed()

    def inject_mo(self, sender: str, to: str, body: str, *,
                  system_id: str | None = None) -> int:
        """Sends a mobile-originated message to a receiving bind (of ``system_id`` if
        given), queued until one is up; returns its number of parts.

        ``ValueError`` for an address or a body SMPP cannot carry.
        """
        self._next_reference = (self._next_reference + 1) & 0xFF
        parts = mo_deliver_sms(sender, to, body, reference=self._next_reference)
        self._mo.queued += len(parts)
        self._post([_Delivery(pdu, system_id, self._mo) for pdu in parts])
        return len(parts)

    @property
    def submits(self) -> list[SubmitRecord]:
        """The accepted submits, oldest first (the last ``SUBMITS_KEPT`` of them)."""
        return list(self._submits)

    def stats(self) -> dict[str, object]:
        """Counters since start, as JSON-ready values.

        ``duplicates``: accepted submits whose (destination, body, source) an earlier
        accepted one had (a submit sent again after an error answer is not one).
        """
        counters = self._counters
        return {
            "bound": sum(1 for bind in self._binds.values() if bind.link.session.is_bound),
            "binds": counters.binds, "binds_refused": counters.binds_refused,
            "submits": counters.submits, "submits_accepted": counters.submits_accepted,
            "submit_errors": {CommandStatus(status).name: count
                              for status, count in sorted(counters.submit_errors.items())},
            "duplicates": counters.duplicates, "disconnects": counters.disconnects,
            "answers_swallowed": counters.swallowed,
            **self._receipts.stats("receipts"), **self._mo.stats("mo"),
        }

    def disconnect_all(self) -> int:
        """Drops every connection at once, without unbind; returns how many there were."""
        binds = [bind for bind in self._binds.values() if not bind.dropped]
        for bind in binds:
            self._drop(bind)
        return len(binds)

    # --- connections and binds ---------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session("server", self._session_config, now=time.monotonic())
        link = Link(session, reader, writer, on_request=self._on_request,
                    on_event=self._on_event)
        self._binds[link] = bind = _Bind(link, writer)
        self._no_binds.clear()
        try:
            await link.run()
        finally:
            self._forget(bind)

    def _forget(self, bind: _Bind) -> None:
        del self._binds[bind.link]
        receivers = self._receivers.get(bind.system_id, [])
        if bind in receivers:
            receivers.remove(bind)
        self._post(list(bind.in_flight.values()))  # left by a failure; normally empty
        if not self._binds:
            self._no_binds.set()

    def _on_event(self, link: Link, event: Event) -> None:
        bind = self._binds.get(link)
        if bind is None:
            return
        if isinstance(event, ResponseReceived):
            self._on_answered(bind, event.request.sequence_number, event.response)
        elif isinstance(event, RequestTimedOut | RequestAbandoned):
            self._on_unanswered(bind, event.request.sequence_number)
        elif isinstance(event, BindRequested):
            self._on_bind_requested(bind, event.pdu.system_id, event.pdu.password)
        elif isinstance(event, Bound):
            self._on_bound(bind, event)

    def _on_bind_requested(self, bind: _Bind, system_id: str, password: str) -> None:
        required = self.behaviour
        if required.system_id is not None and system_id != required.system_id:
            refusal = CommandStatus.ESME_RINVSYSID
        elif required.password is not None and password != required.password:
            refusal = CommandStatus.ESME_RINVPASWD
        else:
            bind.link.accept_bind(SIMULATOR_SYSTEM_ID)  # Bound comes back through _on_event
            return
        self._counters.binds_refused += 1
        bind.link.reject_bind(refusal)

    def _on_bound(self, bind: _Bind, event: Bound) -> None:
        bind.system_id = event.peer_system_id
        self._counters.binds += 1
        if event.mode != "transmitter":
            self._receivers[bind.system_id].append(bind)
            self._schedule_pump(bind)

    def _drop(self, bind: _Bind) -> None:
        # close(), not abort(): answers already written still go out, so the ESME knows
        # exactly which submits were taken; everything after is lost, as in a crash.
        bind.dropped = True
        self._counters.disconnects += 1
        bind.link.flush_now()  # the answers of this turn, not yet written
        bind.writer.close()

    # --- submit_sm ---------------------------------------------------------------------

    def _on_request(self, link: Link, pdu: Pdu) -> None:
        bind = self._binds.get(link)
        if bind is None or bind.dropped:
            return
        if not isinstance(pdu, SubmitSm):  # data_sm, query_sm: not simulated
            link.respond(pdu, CommandStatus.ESME_RINVCMDID)
            return
        self._counters.submits += 1
        bind.submits += 1
        if bind.submits == self.behaviour.disconnect_after:
            self._drop(bind)
            return
        outcome = self._outcomes.pick(pdu.destination_addr)
        if self.behaviour.window_delay:
            self._answers_due.add(self.behaviour.window_delay, (bind, pdu, outcome))
        else:
            self._answer(bind, pdu, outcome)

    def _answer_all(self, due: list[tuple[_Bind, SubmitSm, Outcome]]) -> None:
        for bind, pdu, outcome in due:
            self._answer(bind, pdu, outcome)

    def _answer(self, bind: _Bind, pdu: SubmitSm, outcome: Outcome) -> None:
        if bind.dropped or bind.link.is_closed:
            return  # nobody to tell: the ESME will submit it again, so it is not taken
        if outcome.submit_status != _OK:
            self._counters.submit_errors[outcome.submit_status] += 1
            bind.link.respond(pdu, outcome.submit_status)
            return
        record = self._accept(bind, pdu)
        if self._counters.swallowed < self.behaviour.swallow_answers:
            self._counters.swallowed += 1  # taken, but the answer is lost on its way
        else:
            bind.link.respond(pdu, message_id=record.message_id)
        if wants_receipt(pdu.registered_delivery, outcome):
            self._receipts.queued += 1
            self._receipts_due.add(self.behaviour.receipt_delay, (record, outcome))

    def _accept(self, bind: _Bind, pdu: SubmitSm) -> SubmitRecord:
        message_id = f"{self._next_message_id:012x}"
        self._next_message_id = (self._next_message_id + 1) & _MESSAGE_ID_MASK
        record = SubmitRecord(message_id, bind.system_id, time.time(), pdu)
        self._submits.append(record)
        self._counters.submits_accepted += 1
        # A hash, not the triple: tens of bytes a submit instead of hundreds over a long
        # benchmark. A false duplicate would take a 64-bit collision.
        body = message_octets(pdu.short_message, pdu.optional)
        fingerprint = hash((pdu.destination_addr, body, pdu.source_addr))
        if fingerprint in self._fingerprints:
            self._counters.duplicates += 1
        else:
            self._fingerprints.add(fingerprint)
        return record

    # --- deliver_sm: receipts and MO ---------------------------------------------------

    def _release_receipts(self, due: list[tuple[SubmitRecord, Outcome]]) -> None:
        done_at = time.time()
        self._post([_Delivery(receipt_deliver_sm(record, outcome, done_at), record.system_id,
                              self._receipts) for record, outcome in due])

    def _post(self, deliveries: list[_Delivery]) -> None:
        """Queues deliveries for their system_id and wakes the binds that may take them."""
        targets: set[str | None] = set()
        for delivery in deliveries:
            self._mailboxes[delivery.system_id].append(delivery)
            targets.add(delivery.system_id)
        for system_id in targets:
            receivers = (self._receivers.get(system_id, []) if system_id is not None
                         else itertools.chain.from_iterable(self._receivers.values()))
            for bind in receivers:
                self._schedule_pump(bind)

    def _on_answered(self, bind: _Bind, sequence_number: int, response: Pdu) -> None:
        delivery = bind.in_flight.pop(sequence_number, None)
        if delivery is not None:
            if response.command_status == _OK:
                delivery.tally.acknowledged += 1
            else:
                self._retries_due.add(self.behaviour.receipt_retry_delay, delivery)
        self._schedule_pump(bind)

    def _on_unanswered(self, bind: _Bind, sequence_number: int) -> None:
        delivery = bind.in_flight.pop(sequence_number, None)
        if delivery is not None:  # it waited its time-out, or its connection is gone
            self._post([delivery])

    def _schedule_pump(self, bind: _Bind) -> None:
        # One pump per loop iteration, however many answers or receipts woke it: the
        # deliver_sm it sends then leave in one write.
        if not bind.pump_due:
            bind.pump_due = True
            asyncio.get_running_loop().call_soon(self._pump, bind)

    def _pump(self, bind: _Bind) -> None:
        """Sends queued deliveries on ``bind`` while its window has room."""
        bind.pump_due = False
        session, now, sent = bind.link.session, time.monotonic(), False
        while not bind.dropped and session.can_send(now):
            delivery = self._next_delivery(bind.system_id)
            if delivery is None:
                break
            bind.in_flight[session.send_request(delivery.pdu, now)] = delivery
            delivery.tally.sent += 1
            if delivery.attempts:
                delivery.tally.retried += 1
            delivery.attempts += 1
            sent = True
        if sent:
            bind.link.flush()

    def _next_delivery(self, system_id: str) -> _Delivery | None:
        for key in (system_id, None):
            mailbox = self._mailboxes.get(key)
            if mailbox:
                return mailbox.popleft()
        return None
