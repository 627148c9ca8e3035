"""Submitting a message once: what every connector does for idempotency by message id.

``SubmitOnce.run(message_id, submit)`` (or ``start``, for many at once) answers a
message id it has a final answer for (accepted or rejected) from memory, lets a
repeat that comes while the first submit is still running share that submit, and
keeps the last ``REMEMBERED`` final answers. A ``retry`` is not remembered: the
next submit tries again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from tidings.connectors.base import SubmitResult

REMEMBERED = 200_000


class SubmitOnce:
    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._answers: OrderedDict[str, SubmitResult] = OrderedDict()
        self._running: dict[str, asyncio.Future[SubmitResult]] = {}
        self._remembered = remembered

    def known(self, message_id: str) -> SubmitResult | None:
        return self._answers.get(message_id)

    def remember(self, result: SubmitResult) -> None:
        if result.outcome == "retry":
            return
        self._answers[result.message_id] = result
        if len(self._answers) > self._remembered:
            self._answers.popitem(last=False)

    async def run(self, message_id: str,
                  submit: Callable[[], Awaitable[SubmitResult]]) -> SubmitResult:
        # Shielded: a caller cancelled mid-submit does not cut the submit off, and the
        # answer is still there for the next one.
        return await asyncio.shield(self.start(message_id, submit))

    def start(self, message_id: str,
              submit: Callable[[], Awaitable[SubmitResult]]) -> asyncio.Future[SubmitResult]:
        """The answer to come: a known one at once, else the submit running for this id
        (started now if none is). Await it shielded, as ``run`` does, or a cancelled
        caller would cancel the submit."""
        known = self._answers.get(message_id)
        if known is not None:
            answered: asyncio.Future[SubmitResult] = \
                asyncio.get_running_loop().create_future()
            answered.set_result(known)
            return answered
        running = self._running.get(message_id)
        if running is None:
            running = asyncio.ensure_future(self._submit_and_remember(submit))
            self._running[message_id] = running
            running.add_done_callback(lambda _: self._running.pop(message_id, None))
        return running

    async def wait_running(self) -> None:
        """Let the submits still running finish (``stop`` of a connector)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def cancel_running(self) -> None:
        for running in list(self._running.values()):
            running.cancel()

    async def _submit_and_remember(
            self, submit: Callable[[], Awaitable[SubmitResult]]) -> SubmitResult:
        result = await submit()
        self.remember(result)
        return result
