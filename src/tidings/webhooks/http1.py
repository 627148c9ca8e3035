"""A small HTTP/1.1 client for webhooks: keep-alive POSTs of prepared bodies.

Why not aiohttp's client: a webhook is one POST of a body that is already built,
and aiohttp's per-request machinery (request and response objects, tracing,
cookies, redirects, its timers) cost about four times the CPU of the POST itself
(about 310 against 70 µs a request, measured on loopback). Responses are parsed
by ``httptools`` (llhttp, the parser of Node.js; uvicorn's too); what is written
here is the connection pool and the request line.

Where a connection may go is :mod:`tidings.webhooks.destinations`' to say: the
host's addresses are resolved and checked first, and only a checked one is
connected to.

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
import base64
import functools
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httptools

from tidings.webhooks.destinations import DestinationPolicy


class InvalidURL(ValueError):
    """The URL is not an absolute http(s) URL with a host."""


class ConnectError(Exception):
    """No connection: DNS, refused, unreachable, or the TLS handshake failed."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ServerDisconnected(Exception):
    """The connection closed before the whole response came."""


class InvalidResponse(Exception):
    """The peer's answer is not HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    length: int  # bytes of the body read: at most the client's response_limit


@dataclass(frozen=True, slots=True)
class Target:
    origin: Origin
    path: str  # with the query
    authorization: str | None  # Basic, from user:password@ in the URL


@functools.lru_cache(maxsize=4096)  # a few URLs per account, each parsed per request else
def split_url(url: str) -> Target:
    """Where an http(s) URL points: origin, request target, credentials in it.

    Kept per URL (a refused one is parsed again, to raise again)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(url) from exc
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host or any(c in host for c in " \t\r\n/\\@"):
        raise InvalidURL(url)
    if any(c in url for c in " \t\r\n\x00"):
        raise InvalidURL(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
    return Target(Origin(scheme, host, port or (443 if scheme == "https" else 80)), path,
                  authorization)


def request_head(origin: Origin, target: str, headers: Mapping[str, str],
                 content_length: int) -> bytes:
    """The request line and headers; a later header replaces an earlier one of the same
    name whatever its case. A name or value that would break the head is refused."""
    merged: dict[str, tuple[str, str]] = {}
    for name, value in headers.items():
        if not _is_token(name) or _BREAKS_HEAD.search(value):
            raise ValueError(f"header {name[:40]!r} is not a valid HTTP header")
        merged[name.lower()] = (name, value)
    merged.pop("host", None)
    merged["content-length"] = ("Content-Length", str(content_length))
    lines = [f"POST {target} HTTP/1.1", f"Host: {origin.host_header}",
             *(f"{name}: {value}" for name, value in merged.values())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110's tchar, one or more
_BREAKS_HEAD = re.compile("[\r\n\x00]")  # in a value, a header or a request of its own


def _is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; the response parsed as it arrives."""

    def __init__(self, response_limit: int) -> None:
        self._limit = response_limit
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

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._length = 0
        self._status, self._framed = None, False

    def on_header(self, name: bytes, _value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

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
    """POSTs over keep-alive connections, at most ``max_idle`` of them kept open idle."""

    def __init__(self, *, max_idle: int, keepalive_seconds: float, response_limit: int,
                 ssl_context: ssl.SSLContext | None = None,
                 destinations: DestinationPolicy | None = None) -> None:
        self._max_idle, self._keepalive = max_idle, keepalive_seconds
        self._destinations = destinations or DestinationPolicy()
        self._limit = response_limit
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *,
                   timeout: float) -> Response:
        """Raises ``InvalidURL``, ``ValueError`` (a bad header), ``RefusedDestination``,
        ``ConnectError``, ``ServerDisconnected``, ``InvalidResponse`` or ``TimeoutError``."""
        target = split_url(url)
        origin = target.origin
        if target.authorization:
            headers = {**headers, "Authorization": target.authorization}
        data = request_head(origin, target.path, headers, len(body)) + body
        async with asyncio.timeout(timeout):
            while True:
                connection, reused = await self._connection(origin)
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

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._idle_count = 0

    async def _connection(self, origin: Origin) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection, True
            connection.close()
        return await self._connect(origin), False

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if origin.scheme == "https":
            context = self._ssl or ssl.create_default_context()
        try:
            # The addresses checked are the ones connected to: a name that resolves
            # elsewhere on a second look (DNS rebinding) cannot slip past the check.
            addresses = await self._destinations.resolve(origin.host, origin.port)
        except OSError as exc:  # socket.gaierror
            raise ConnectError(exc) from exc
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

    def _release(self, origin: Origin, connection: _Connection) -> None:
        if not connection.keep_alive or connection.closed or self._idle_count >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1
