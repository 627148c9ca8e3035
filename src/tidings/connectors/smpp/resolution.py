"""The SMPP connector's side of crash safety: submits recorded before they leave, and
after a restart the unknown ones held until a receipt tells, or their window closes.

``ledger.py`` keeps the rows, ``matching.py`` the keyed digests, ``unknowns.py`` the
held messages and their window; this puts them on the connector's submit and receipt
paths (``SmppConnector`` calls it when built with a ledger and a match key).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable

import anyio

from tidings.connectors.base import OutboundMessage, SubmitResult
from tidings.connectors.smpp.addresses import to_smpp
from tidings.connectors.smpp.ledger import SubmitLedger
from tidings.connectors.smpp.matching import ReceiptMatcher
from tidings.connectors.smpp.pdu import DataSm, DeliverSm, Pdu
from tidings.connectors.smpp.unknowns import HeldUnknowns
from tidings.core.logs import get_logger

log = get_logger("tidings.smpp")

HOLD_SECONDS = 60.0
# How often the dispatcher looks again at a held message: a quarter of the window, so
# a hold costs at most 4 of the job's attempts (dispatch_retry_max_attempts), and at
# most this often, since a receipt that resolved it waits deliveries.HOLD_SECONDS for
# the dispatcher to record its answer.
RECHECK_SECONDS = 30.0
UNKNOWN_HELD = "smpp_unknown_held"

# Waits (briefly) for a bind; the retry to answer when none came up, else None.
BindWait = Callable[[str], Awaitable[SubmitResult | None]]


class CrashResolution:
    def __init__(self, name: str, ledger: SubmitLedger, matcher: ReceiptMatcher, *,
                 window: int, hold_seconds: float,
                 record: Callable[[SubmitResult], Awaitable[None]],
                 remember: Callable[[SubmitResult], None]) -> None:
        self._name, self._ledger, self._matcher = name, ledger, matcher
        self._hold_seconds = hold_seconds
        # Messages recorded as leaving whose submit_sm has no place in a window yet: at
        # most a window's worth (binds x window), or a batch waiting for room would
        # all be unknown after a crash, though none of it left. anyio's semaphore, not
        # asyncio's: a batch queues hundreds of waiters here, and asyncio's release
        # (3.11 to 3.13) scans past every waiter already woken for the first that is
        # not, which cost 76 Future.done() calls a message in a 20,000-message batch
        # run (cProfile of ``tidings serve``, bench.smpp's tidings-sqlite-webhooks);
        # anyio's hands its place to the first waiter in O(1).
        self._not_yet_sent = anyio.Semaphore(window, fast_acquire=True)
        self._record, self._remember = record, remember
        self._unknowns = HeldUnknowns()
        # Resolved by a receipt, answer being written: a submit meanwhile waits for it.
        self._resolving: dict[str, asyncio.Task[SubmitResult]] = {}

    async def load(self) -> None:
        """The unknown submits of the run before (the ledger is open)."""
        self._unknowns = HeldUnknowns(await self._ledger.unknown(), self._hold_seconds)
        if self._unknowns:
            log.warning("smpp_unknown_submits_held", connector=self._name,
                        count=len(self._unknowns))

    async def settle(self) -> None:
        """Let the resolutions being written finish (the connector stops)."""
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)

    async def write_ahead(self, message: OutboundMessage) -> Callable[[], None]:
        """On disk (grouped with others) before the submit_sm leaves: this message is
        leaving. Returns what to call once its (first) submit_sm has its place in a
        window, or was given up: until then it holds one of the window's worth of
        places. If the ledger cannot write, the message goes all the same: after a
        crash it would then be sent again at once, as if it had never left."""
        await self._not_yet_sent.acquire()
        sent = _release_once(self._not_yet_sent)
        keys = self._matcher.for_submit(to_smpp(message.to)[2], to_smpp(message.sender)[2],
                                        message.body)
        try:
            await self._ledger.leaving(message.message_id, keys)
        except (OSError, sqlite3.Error, RuntimeError):
            log.exception("smpp_ledger_write_failed", connector=self._name)
        except BaseException:
            sent()
            raise
        return sent

    def answered(self, result: SubmitResult) -> None:
        """An SMSC answer of this run (its receipt may come before the answer is on
        disk): a receipt naming its id is not a lost submit's."""
        if self._unknowns and result.carrier_message_id:
            self._unknowns.note_answer(result.carrier_message_id, time.monotonic())

    async def held(self, message_id: str, bind_wait: BindWait) -> SubmitResult | None:
        """The answer for ``message_id`` while it is unknown: the one a receipt just
        gave it, or retry-later while its window is open; None once it may be sent.
        Never waits beyond a bind coming up, so no dispatch outlives its lease."""
        resolving = self._resolving.get(message_id)
        if resolving is not None:
            return await asyncio.shield(resolving)
        if message_id not in self._unknowns:
            return None
        if not self._unknowns.begun:
            no_bind = await bind_wait(message_id)  # the window starts when receipts can come
            if no_bind is not None:
                return no_bind
            self._unknowns.begin(time.monotonic())
        remaining = self._unknowns.remaining(message_id, time.monotonic())
        if remaining is None:
            log.info("smpp_unknown_sent_again", connector=self._name, message_id=message_id)
            return None
        recheck = max(min(self._hold_seconds / 4, RECHECK_SECONDS), 0.1)
        return SubmitResult(message_id, "retry", error_code=UNKNOWN_HELD,
                            retry_after_seconds=min(remaining, recheck))

    def on_refused(self, receipt: Pdu, carrier_id: str) -> bool:
        """A receipt nobody knows the carrier id of: is it a held message's? Then that
        message was taken, with this id (recorded before the dispatcher hears it)."""
        if not self._unknowns or not isinstance(receipt, DeliverSm | DataSm):
            return False
        keys, has_text = self._matcher.for_receipt(receipt)
        message_id = self._unknowns.match(keys, has_text=has_text, carrier_id=carrier_id,
                                          now=time.monotonic())
        if message_id is None:
            return False
        log.info("smpp_unknown_resolved", connector=self._name, message_id=message_id)
        task = asyncio.create_task(self._resolve(
            SubmitResult(message_id, "accepted", carrier_message_id=carrier_id)))
        self._resolving[message_id] = task
        task.add_done_callback(lambda _: self._resolving.pop(message_id, None))
        return True

    async def _resolve(self, result: SubmitResult) -> SubmitResult:
        await self._record(result)
        self._remember(result)
        return result


def _release_once(semaphore: anyio.Semaphore) -> Callable[[], None]:
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            semaphore.release()
    return release


def nothing() -> None:
    """What a submit without a write-ahead record calls once it is sent."""
