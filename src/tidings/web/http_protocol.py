"""The API's HTTP/1.1 protocol: uvicorn's httptools protocol with deadlines for slow clients.

uvicorn times out only idle keep-alive connections: a client that opens a connection
and sends nothing, or sends its headers or body a byte at a time, holds a file
descriptor for ever, and a thousand of them stop every new request. Here:

* the request head (request line and headers) must arrive within
  ``http_header_timeout_seconds`` of the connection opening or the previous response
  ending, and the body within ``http_body_timeout_seconds`` of the head; past that the
  client gets ``408`` and the connection is closed;
* a connection beyond ``http_max_connections`` is answered ``503`` and closed at
  once, before it can hold anything.

Both are logged (at most one line a second for each kind, with a count), never with
the client's address or request.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tidings.core.logs import get_logger
from tidings.core.settings import Settings

log = get_logger("tidings.http")
FD_RESERVE = 128  # descriptors kept for the database, carriers and webhooks


@dataclass(frozen=True)
class ClientLimits:
    header_seconds: float
    body_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds,
                   settings.http_max_connections)


class _ThrottledLog:
    """One warning line a second at most per event, with how many happened since."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def warn(self, event: str, **fields: Any) -> None:
        self._count[event] = self._count.get(event, 0) + 1
        now = time.monotonic()
        if now - self._last.get(event, 0.0) < 1.0:
            return
        self._last[event] = now
        log.warning(event, count=self._count.pop(event), **fields)


_throttled = _ThrottledLog()


class GuardedHttpProtocol(HttpToolsProtocol):
    """Give as ``http=`` to uvicorn. Limits come from the settings (the environment) of
    the process, unless a subclass sets ``limits``."""

    limits: ClassVar[ClientLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls.limits is None:
            cls.limits = ClientLimits.from_settings(Settings())
        self._limits = cls.limits
        # The phase under way and the loop time by which it must be done (None: none).
        self._phase = ""
        self._deadline: float | None = None
        # One timer per connection, set for the earliest deadline it may have to meet
        # and moved on when it fires early, rather than a timer made and cancelled
        # twice per request: those were a measurable share of a single send's CPU.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            _throttled.warn("http_connection_refused", reason="max_connections",
                            limit=self._limits.max_connections)
            self._answer_and_close(503, b"Service Unavailable")
            return
        self._arm("headers", self._limits.header_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a request on a kept-alive connection
            self._arm("headers", self._limits.header_seconds)

    def on_headers_complete(self) -> None:
        self._arm("body", self._limits.body_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, phase: str, seconds: float) -> None:
        deadline = self.loop.time() + seconds
        self._phase, self._deadline = phase, deadline
        if self._timer is None or self._timer_at > deadline:
            self._set_timer(deadline)

    def _disarm(self) -> None:
        self._deadline = None  # a pending timer finds nothing due and lapses

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(when, self._on_timer), when

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self.loop.time() < self._deadline:  # a later phase or request: wait for it
            self._set_timer(self._deadline)
            return
        phase, self._deadline = self._phase, None
        self._too_slow(phase)

    def _too_slow(self, phase: str) -> None:
        if self.transport.is_closing():
            return
        _throttled.warn("http_client_too_slow", phase=phase)
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        if self.cycle is not None:  # the app stops waiting for the rest of the body
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._answer_and_close(408, b"Request Timeout")

    def _answer_and_close(self, status: int, reason: bytes) -> None:
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                             % (status, reason))
        self.transport.close()


def raise_open_files_limit(max_connections: int) -> None:
    """Let the process open as many files as the system allows, and say so when that is
    too few for ``max_connections`` (the server would stop accepting before its cap)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < max_connections + FD_RESERVE:
        log.warning("http_open_files_limit_low", open_files=wanted,
                    max_connections=max_connections,
                    hint="lower TIDINGS_HTTP_MAX_CONNECTIONS or raise the open files limit")
