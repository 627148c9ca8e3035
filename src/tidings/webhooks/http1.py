"""A small HTTP/1.1 client for webhooks: keep-alive POSTs of prepared bodies.

Why not aiohttp's client: a webhook is one POST of a body that is already built,
and aiohttp's per-request machinery (request and response objects, tracing,
cookies, redirects, its timers) cost about four times the CPU of the POST itself
(about 310 against 70 µs a request, measured on loopback). Responses are parsed
by ``httptools`` (llhttp, the parser of Node.js; uvicorn's too); what is written
here is the connection pool and the request line.

Where a connection may go is :mod:`tidings.webhooks.destinations`' to say: the
host's addresses are resolved and checked first, and only a checked one is
connected to. Through the operator's proxy (:mod:`tidings.webhooks.proxies`) the
proxy connects, and the host's addresses are checked all the same. One TLS
context serves the process, and a response head past ``MAX_HEAD_BYTES`` fails.

Rules: no redirects are followed (a 3xx is returned as it is), no cookies are
kept, a response body is read up to ``response_limit`` bytes (the connection is
closed past that) and only counted: an answer's content is never kept. The whole
request, connect included, has one deadline. A request on a reused connection
that the server had closed meanwhile (no byte of a response came back) goes once
more on a new connection: webhooks are delivered at least once anyway, with an id
to deduplicate on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httptools

from tidings.webhooks.destinations import DestinationPolicy
from tidings.webhooks.proxies import Proxies, Proxy, ProxyError, open_tunnel
from tidings.webhooks.urls import InvalidURL, Origin, Target, request_head, split_url

__all__ = ["ConnectError", "Http1Client", "InvalidResponse", "InvalidURL", "Origin",
           "ProxyError", "Response", "ResponseHeadTooLarge", "ServerDisconnected", "Target",
           "request_head", "split_url"]

MAX_HEAD_BYTES = 64 * 1024
"""A response's status line and headers past this fail the attempt (one of 8 MB was seen)."""


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """The system's trusted CAs, loaded once per process: building a context costs
    about 25 ms of CPU on the event loop, more than a keep-alive POST saves."""
    return ssl.create_default_context()


class ConnectError(Exception):
    """No connection: DNS, refused, unreachable, or the TLS handshake failed."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ServerDisconnected(Exception):
    """The connection closed before the whole response came."""


class InvalidResponse(Exception):
    """The peer's answer is not HTTP/1.x."""


class ResponseHeadTooLarge(InvalidResponse):
    """The status line and headers went past ``MAX_HEAD_BYTES``."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    length: int  # bytes of the body read: at most the client's response_limit


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; the response parsed as it arrives."""

    def __init__(self, response_limit: int) -> None:
        self._limit = response_limit
        self._head_bytes = 0  # of the current response until its headers are complete
        self._head_done = False
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._length = 0  # of the body: counted, never kept
        self._status: int | None = None
        # A Content-Length or Transfer-Encoding header came; a body with neither ends
        # when the connection does.
        self._framed = False
        self.answered = False  # a byte of the current response came
        self.keep_alive = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._status is not None and not self._framed:
            self._finish()  # read until the close: the close is the end
        self._fail(ServerDisconnected())

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing was asked: an unsolicited byte spoils the connection
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InvalidResponse(str(exc) or type(exc).__name__))
            self.close()
            return
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(ResponseHeadTooLarge(f"response head over {MAX_HEAD_BYTES} bytes"))
                self.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._length = 0
        self._head_done = False
        self._status, self._framed = None, False

    def on_header(self, name: bytes, _value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        room = self._limit - self._length
        self._length += min(len(body), room)
        if len(body) >= room and self._waiter is not None and not self._waiter.done():
            self._finish()  # enough: the rest is not read
            self.close()

    def on_message_complete(self) -> None:
        if self._status is not None and 100 <= self._status < 200:
            return  # an interim answer (100 Continue): the real one follows
        self.keep_alive = self._parser.should_keep_alive()
        self._finish()

    # the client's side
    async def exchange(self, data: bytes) -> Response:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.answered, self.keep_alive = False, False
        self._head_bytes = 0
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        self.keep_alive = False
        if self._transport is not None:
            self._transport.close()

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._status is not None:
            waiter.set_result(Response(self._status, self._length))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class Http1Client:
    """POSTs over keep-alive connections, at most ``max_idle`` of them kept open idle.

    ``proxies``: the outgoing proxies (default: from the environment, see
    :mod:`tidings.webhooks.proxies`)."""

    def __init__(self, *, max_idle: int, keepalive_seconds: float, response_limit: int,
                 ssl_context: ssl.SSLContext | None = None,
                 destinations: DestinationPolicy | None = None,
                 proxies: Proxies | None = None) -> None:
        self._max_idle, self._keepalive = max_idle, keepalive_seconds
        self._destinations = destinations or DestinationPolicy()
        self._proxies = proxies if proxies is not None else Proxies.from_environment()
        self._limit = response_limit
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *,
                   timeout: float) -> Response:
        """Raises ``InvalidURL``, ``ValueError`` (a bad header), ``RefusedDestination``,
        ``ConnectError``, ``ProxyError``, ``ServerDisconnected``, ``InvalidResponse``
        or ``TimeoutError``."""
        target = split_url(url)
        origin = target.origin
        proxy = self._proxies.for_origin(origin)
        data = self._request(target, proxy, headers, body)
        async with asyncio.timeout(timeout):
            while True:
                connection, reused = await self._connection(origin, proxy)
                try:
                    response = await connection.exchange(data)
                except ServerDisconnected:
                    connection.close()
                    if reused and not connection.answered:
                        continue  # the server had closed it while idle: a new one
                    raise
                except BaseException:
                    connection.close()
                    raise
                self._release(origin, connection)
                return response

    @staticmethod
    def _request(target: Target, proxy: Proxy | None, headers: Mapping[str, str],
                 body: bytes) -> bytes:
        origin, path = target.origin, target.path
        extra = {}
        if target.authorization:
            extra["Authorization"] = target.authorization
        if proxy is not None and origin.scheme == "http":  # no tunnel: the proxy forwards
            path = origin.absolute + path
            if proxy.authorization:
                extra["Proxy-Authorization"] = proxy.authorization
        return request_head(origin, path, {**headers, **extra}, len(body)) + body

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._idle_count = 0

    async def _connection(self, origin: Origin,
                          proxy: Proxy | None) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection, True
            connection.close()
        return await self._connect(origin, proxy), False

    async def _connect(self, origin: Origin, proxy: Proxy | None) -> _Connection:
        try:
            if proxy is not None:
                await self._check_for_proxy(origin)
                return await self._connect_through(proxy, origin)
            # The addresses checked are the ones connected to: a name that resolves
            # elsewhere on a second look (DNS rebinding) cannot slip past the check.
            addresses = await self._destinations.resolve(origin.host, origin.port)
        except OSError as exc:  # socket.gaierror, ssl.SSLError, refused, unreachable
            raise ConnectError(exc) from exc
        return await self._connect_to(origin, addresses)

    async def _check_for_proxy(self, origin: Origin) -> None:
        """Through a proxy, the proxy resolves and connects; the name's addresses are
        checked here all the same. Behind a proxy a public name often does not resolve
        at all: then the checks that need no DNS (literal addresses, local names) are
        what is left, and they ran first."""
        with contextlib.suppress(socket.gaierror):
            await self._destinations.resolve(origin.host, origin.port)

    async def _connect_to(self, origin: Origin,
                          addresses: list[tuple[str, int]]) -> _Connection:
        loop = asyncio.get_running_loop()
        context = self._tls_context(origin)
        failure: OSError = ConnectionRefusedError("no address")
        for host, port in addresses:
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._limit), host, port, ssl=context,
                    server_hostname=origin.host if context else None)
            except OSError as exc:  # ssl.SSLError is an OSError too
                failure = exc
                continue
            return connection
        raise ConnectError(failure)

    async def _connect_through(self, proxy: Proxy, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(self._limit)
        context = self._tls_context(origin)
        if context is None:
            await loop.create_connection(lambda: connection, proxy.host, proxy.port)
            return connection
        tunnel = await open_tunnel(proxy, origin, head_limit=MAX_HEAD_BYTES)
        try:
            tls = await loop.start_tls(tunnel, connection, context,
                                       server_hostname=origin.host)
        except BaseException:
            tunnel.close()
            raise
        assert tls is not None  # None only for a transport that is closing
        connection.connection_made(tls)  # start_tls hands the protocol a transport silently
        return connection

    def _tls_context(self, origin: Origin) -> ssl.SSLContext | None:
        if origin.scheme != "https":
            return None
        return self._ssl or default_tls_context()

    def _release(self, origin: Origin, connection: _Connection) -> None:
        if not connection.keep_alive or connection.closed or self._idle_count >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1
