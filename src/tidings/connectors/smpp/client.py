"""One ESME bind to an SMSC, kept up: connect, bind, and on any loss reconnect with backoff.

``SmppClient.link`` is the bound link, or None while (re)connecting. Requests the
SMSC sends (deliver_sm: receipts and mobile-originated messages) go to
``on_request``, which answers them through the link.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from tidings.connectors.smpp.link import LateAnswerHandler, Link, RequestHandler
from tidings.connectors.smpp.session import BindMode, Session, SessionConfig
from tidings.core.logs import get_logger

log = get_logger("tidings.smpp")
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class BindTarget:
    host: str
    port: int
    system_id: str
    password: str = field(repr=False, default="")
    system_type: str = ""
    mode: BindMode = "transceiver"
    session: SessionConfig = field(default_factory=SessionConfig)
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0


class SmppClient:
    def __init__(self, target: BindTarget, *, on_request: RequestHandler, name: str,
                 on_late_answer: LateAnswerHandler | None = None) -> None:
        self._target, self._on_request, self._name = target, on_request, name
        self._on_late_answer = on_late_answer
        self._link: Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._bound_changed = asyncio.Event()
        self._stopped = False

    @property
    def link(self) -> Link | None:
        link = self._link
        return link if link is not None and not link.is_closed else None

    def start(self) -> None:
        if self._task is None:
            self._stopped = False
            self._task = asyncio.create_task(self._keep_bound(), name=f"smpp-{self._name}")

    async def stop(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait_for can swallow a cancel
        # that comes as the bind answer does, and the bind would then carry on.
        self._stopped = True
        task, self._task = self._task, None
        link, self._link = self._link, None
        if link is not None:
            await link.unbind()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_change(self, timeout: float) -> None:
        """Wait until a bind comes up or goes down (or ``timeout`` passes)."""
        self._bound_changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bound_changed.wait(), timeout)

    async def _keep_bound(self) -> None:
        backoff = self._target.reconnect_min_seconds
        while not self._stopped:
            if await self._bind_once():
                backoff = self._target.reconnect_min_seconds
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._target.reconnect_max_seconds)

    async def _bind_once(self) -> bool:
        """Connect, bind and serve until the link ends; True if the bind succeeded."""
        target = self._target
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError) as exc:
            log.warning("smpp_connect_failed", connector=self._name, error=type(exc).__name__)
            return False
        link = Link(Session("client", target.session), reader, writer,
                    on_request=self._on_request, on_late_answer=self._on_late_answer)
        runner = asyncio.create_task(link.run())
        try:
            return await self._serve(link, runner)
        except asyncio.CancelledError:
            # Stopped mid-bind: the socket must not stay open, bound, behind our back.
            await link.unbind()
            raise

    async def _serve(self, link: Link, runner: asyncio.Task[None]) -> bool:
        target = self._target
        link.bind(target.mode, target.system_id, target.password, target.system_type)
        bound = await link.wait_bound(target.session.bind_timeout)
        if bound is None or self._stopped:
            if bound is None:
                log.warning("smpp_bind_failed", connector=self._name)
            await link.unbind()
            await _finish(runner)
            return False
        self._link = link
        self._bound_changed.set()
        log.info("smpp_bound", connector=self._name, peer=bound.peer_system_id)
        await _finish(runner)
        self._link = None
        self._bound_changed.set()
        log.warning("smpp_unbound", connector=self._name)
        return True


async def _finish(runner: asyncio.Task[None]) -> None:
    with contextlib.suppress(Exception):
        await runner
