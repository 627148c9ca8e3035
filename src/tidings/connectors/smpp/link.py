"""One SMPP session on one asyncio stream: the thin I/O around ``session.Session``.

The link reads the socket into the session, writes out what the session wants
written, fires its timers, and turns requests of ours into awaitables:
``await link.request(pdu)`` waits for room in the window (and the send rate),
sends, and returns the peer's response. Requests from the peer go to the
``on_request`` callback, which answers them with ``link.respond`` (now or later).
Client, server and simulator all run their sessions through this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from tidings.connectors.smpp.pdu import Pdu
from tidings.connectors.smpp.session import (
    BindFailed,
    BindMode,
    Bound,
    CloseRequested,
    ConnectionClosed,
    Event,
    RequestAbandoned,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Session,
    Unbound,
    UnexpectedResponse,
)
from tidings.core.logs import get_logger

log = get_logger("tidings.smpp")
READ_CHUNK = 65_536
MAX_TIMER_SLEEP = 0.25  # re-check timers at least this often (cheap; keeps code simple)

# A request handler answers at once (returns None) or returns the coroutine that will:
# most receipts and submits are only queued, and a task each would cost more than that.
RequestHandler = Callable[["Link", Pdu], Coroutine[Any, Any, None] | None]
EventHandler = Callable[["Link", Event], None]
# (the tag given to ``request``, the response) for an answer that came after its time-out
LateAnswerHandler = Callable[[str, Pdu], None]
TIMED_OUT_KEPT = 10_000  # timed-out requests whose late answer we would still take


class LinkClosed(Exception):
    """The connection ended before the request was answered; its fate is unknown."""


class ResponseTimeout(Exception):
    """The peer did not answer in time; it may still have acted on the request."""


class Link:
    def __init__(self, session: Session, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, on_request: RequestHandler,
                 on_event: EventHandler | None = None,
                 on_late_answer: LateAnswerHandler | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self._reader, self._writer = reader, writer
        self._on_request, self._on_event = on_request, on_event
        self._clock = clock
        self._answers: dict[int, asyncio.Future[Pdu]] = {}
        self._on_late_answer = on_late_answer
        self._tags: dict[int, str] = {}  # sequence number -> the caller's tag, while waiting
        self._timed_out: OrderedDict[int, str] = OrderedDict()
        self._room = asyncio.Event()  # set when the window may have room again
        self._bound = asyncio.Event()
        self._closed = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flush_due = False
        self.bound_as: Bound | None = None

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    async def run(self) -> None:
        """Read and time until the session closes; then close the socket."""
        timers = asyncio.create_task(self._run_timers())
        try:
            while not self._closed.is_set():
                data = await self._read()
                self._handle(self.session.receive_data(data, self._clock()))
                self.flush()
        finally:
            timers.cancel()
            await self._shut()

    async def wait_bound(self, timeout: float) -> Bound | None:
        """The bind's outcome: ``Bound``, or None when it was refused, timed out or the
        connection ended (``_bound`` is set for those too)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bound.wait(), timeout)
        return self.bound_as

    async def request(self, pdu: Pdu, *, tag: str | None = None,
                      on_sent: Callable[[], None] | None = None) -> Pdu:
        """Send a request when the window and the rate allow; its response (any status).

        With a ``tag``, an answer that comes after ``ResponseTimeout`` is handed to
        ``on_late_answer`` with it: the peer did act on the request after all.
        ``on_sent`` is called once the request has its place in the window.
        """
        while True:
            if self._closed.is_set():
                raise LinkClosed("the SMPP connection is closed")
            if not self.session.may_send(pdu.command_id):
                return await self.send_now(pdu)  # raises SessionError: never allowed here
            now = self._clock()
            at = self.session.next_send_at(now)
            if at <= now:
                break
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_room(), None if math.isinf(at) else at - now)
        return await self.send_now(pdu, tag=tag, on_sent=on_sent)

    async def send_now(self, pdu: Pdu, *, tag: str | None = None,
                       on_sent: Callable[[], None] | None = None) -> Pdu:
        """Send a request the session allows now (window checked by the caller)."""
        answer: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        sequence_number = self.session.send_request(pdu, self._clock())
        if on_sent is not None:
            on_sent()
        self._answers[sequence_number] = answer
        if tag is not None:
            self._tags[sequence_number] = tag
        self.flush()
        await self._drain()
        return await answer

    def respond(self, request: Pdu, command_status: int = 0, **fields: object) -> None:
        self.session.respond(request, command_status, **fields)
        self.flush()

    def pause(self, seconds: float) -> None:
        """Hold new windowed requests for ``seconds`` (after ESME_RTHROTTLED, say)."""
        self.session.pause_until(self._clock() + seconds)

    def bind(self, mode: BindMode, system_id: str, password: str,
             system_type: str = "") -> None:
        self.session.bind(mode, system_id, password, self._clock(), system_type=system_type)
        self.flush()

    def accept_bind(self, system_id: str) -> None:
        self._handle([self.session.accept_bind(system_id, self._clock())])
        self.flush()

    def reject_bind(self, command_status: int) -> None:
        self.session.reject_bind(command_status, self._clock())
        self.flush()

    async def unbind(self, timeout: float = 5.0) -> None:
        """Unbind politely if bound, then close."""
        if self.session.is_bound:
            self.session.unbind(self._clock())
            self.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout)
        await self._shut()

    def flush(self) -> None:
        """Write what the session has to send, at the end of this turn of the loop: the
        PDUs of one burst (a window of submits, the answers to a batch of receipts) go
        out in one write, not in a system call each."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self.flush_now)

    def flush_now(self) -> None:
        """Write what the session has to send at once (before the socket closes)."""
        self._flush_due = False
        data = self.session.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    # --- inside -----------------------------------------------------------------------

    async def _read(self) -> bytes:
        try:
            return await self._reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            return b""

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    async def _wait_room(self) -> None:
        await self._room.wait()  # _shut sets it too, so a close wakes the waiters

    async def _run_timers(self) -> None:
        while not self._closed.is_set():
            deadline, now = self.session.next_deadline(), self._clock()
            pause = MAX_TIMER_SLEEP if deadline is None else min(max(deadline - now, 0.0),
                                                                 MAX_TIMER_SLEEP)
            await asyncio.sleep(pause)
            self._handle(self.session.tick(self._clock()))
            self.flush()
            self._room.set()  # a paced send may be due now

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseReceived):
                self._settle(event.request.sequence_number, event.response, None)
            elif isinstance(event, RequestTimedOut):
                self._keep_for_late_answer(event.request.sequence_number)
                self._settle(event.request.sequence_number, None,
                             ResponseTimeout("no response in time"))
            elif isinstance(event, UnexpectedResponse):
                self._late_answer(event.response)
            elif isinstance(event, RequestAbandoned):
                self._settle(event.request.sequence_number, None,
                             LinkClosed("the connection closed first"))
            elif isinstance(event, RequestReceived):
                self._spawn(event.pdu)
            elif isinstance(event, Bound):
                self.bound_as = event
                self._bound.set()
            elif isinstance(event, BindFailed):
                self._bound.set()  # wait_bound returns at once, with None
            elif isinstance(event, Unbound | ConnectionClosed | CloseRequested):
                self._closed.set()
                self._bound.set()
                # run() may sit in read() while a timer closed the session: closing the
                # transport ends that read, so the socket does not outlive the session.
                self.flush_now()  # what the session still had to say (an unbind_resp)
                self._writer.close()
            if self._on_event is not None:
                self._on_event(self, event)

    def _keep_for_late_answer(self, sequence_number: int) -> None:
        tag = self._tags.pop(sequence_number, None)
        if tag is not None and self._on_late_answer is not None:
            self._timed_out[sequence_number] = tag
            if len(self._timed_out) > TIMED_OUT_KEPT:
                self._timed_out.popitem(last=False)

    def _late_answer(self, response: Pdu) -> None:
        tag = self._timed_out.pop(response.sequence_number, None)
        if tag is not None and self._on_late_answer is not None:
            self._on_late_answer(tag, response)

    def _settle(self, sequence_number: int, response: Pdu | None,
                error: Exception | None) -> None:
        self._room.set()
        self._tags.pop(sequence_number, None)
        answer = self._answers.pop(sequence_number, None)
        if answer is None or answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        elif response is not None:
            answer.set_result(response)

    def _spawn(self, pdu: Pdu) -> None:
        try:
            pending = self._on_request(self, pdu)
        except Exception:  # a handler's bug must not end the link's reading
            log.exception("smpp_request_handler_failed", command=type(pdu).__name__)
            return
        if pending is None:
            return
        task = asyncio.create_task(pending)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _shut(self) -> None:
        self._closed.set()
        self._room.set()
        self.flush_now()
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(LinkClosed("the connection closed first"))
        self._answers.clear()
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
