"""HTTP delivery of webhooks over one shared, bounded ``aiohttp`` session.

The sender knows nothing about events, endpoints or the database: it POSTs prepared
bodies with prepared headers (including the signature) and reports what happened. Network
failures never raise; they come back as a :class:`WebhookResult` with ``ok=False``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

DEFAULT_USER_AGENT = "Tidings-Webhooks/0.1"
MAX_RESPONSE_BYTES = 64 * 1024
"""At most this much of a response body is read; the rest is discarded with the connection."""
MAX_EXCERPT_CHARS = 200
MAX_ERROR_CHARS = 200
KEEPALIVE_SECONDS = 30.0

_NETWORK_ERRORS = (aiohttp.ClientError, HttpProcessingError, OSError, ValueError)


@dataclass(frozen=True)
class WebhookRequest:
    """One prepared delivery: where to POST, the exact body, and extra headers."""

    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class WebhookResult:
    """The outcome of one delivery attempt, ready to be stored as an attempt record.

    ``ok`` means a 2xx response. ``status_code`` is ``None`` when no response arrived.
    ``error`` is a short description of the failure (``None`` on success), and
    ``response_excerpt`` holds at most ``MAX_EXCERPT_CHARS`` characters of the body.
    """

    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str


class WebhookSender:
    """Delivers webhooks with at most ``concurrency`` requests in flight.

    Use ``await start()`` / ``await close()`` (or ``async with``) around its lifetime.
    Redirects are not followed (a 3xx is a failure), cookies are never kept, responses are
    requested uncompressed and read up to ``MAX_RESPONSE_BYTES``, and each
    request (connect, send, response, body) must finish within ``timeout_seconds``.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float,
        concurrency: int,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._timeout_seconds = timeout_seconds
        self._concurrency = concurrency
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._semaphore = asyncio.Semaphore(concurrency)

    async def start(self) -> None:
        """Open the shared session and connection pool (idempotent)."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._concurrency,
            limit_per_host=0,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout_seconds),
            # Uncompressed responses only: the read cap then bounds memory exactly, and
            # excerpts are readable text rather than gzip bytes.
            headers={"User-Agent": self._user_agent, "Accept-Encoding": "identity"},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the session and its connections (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> WebhookSender:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, request: WebhookRequest) -> WebhookResult:
        """POST one webhook and report the outcome; network problems never raise."""
        session = self._require_session()
        async with self._semaphore:
            return await _deliver(session, request)

    async def send_many(self, requests: Sequence[WebhookRequest]) -> list[WebhookResult]:
        """Send concurrently (bounded by ``concurrency``); results are in input order.

        A few lanes take the requests in turn rather than a task per request: a
        batch of hundreds then costs a handful of tasks and no queue at the semaphore.
        """
        session = self._require_session()
        results: list[WebhookResult] = [_NOT_SENT] * len(requests)
        turns = iter(range(len(requests)))

        async def lane() -> None:
            for index in turns:
                async with self._semaphore:  # shared with other batches and send()
                    results[index] = await _deliver(session, requests[index])

        await asyncio.gather(*(lane() for _ in range(min(self._concurrency, len(requests)))))
        return results

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("WebhookSender.start() has not been called")
        return self._session


_NOT_SENT = WebhookResult(ok=False, status_code=None, error="not sent", duration_ms=0.0,
                          response_excerpt="")


def _request_headers(extra: Mapping[str, str]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
    for name, value in extra.items():
        headers[name] = value
    return headers


async def _deliver(session: aiohttp.ClientSession, request: WebhookRequest) -> WebhookResult:
    started = time.perf_counter()
    try:
        async with session.post(
            request.url,
            data=request.body,
            headers=_request_headers(request.headers),
            allow_redirects=False,
        ) as response:
            body = await _read_capped(response, MAX_RESPONSE_BYTES)
            status = response.status
    except _NETWORK_ERRORS as exc:
        return WebhookResult(
            ok=False,
            status_code=None,
            error=describe_error(exc),
            duration_ms=_elapsed_ms(started),
            response_excerpt="",
        )
    ok = 200 <= status < 300
    return WebhookResult(
        ok=ok,
        status_code=status,
        error=None if ok else _status_error(status),
        duration_ms=_elapsed_ms(started),
        response_excerpt=_excerpt(body),
    )


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _excerpt(body: bytes) -> str:
    # A character is at most 4 UTF-8 bytes, so this prefix covers MAX_EXCERPT_CHARS.
    text = body[: MAX_EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:MAX_EXCERPT_CHARS]


def _status_error(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status} (redirects are not followed)"
    return f"HTTP {status}"


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def describe_error(exc: BaseException) -> str:
    """A short, stable description of a delivery failure for the attempt record."""
    return _truncate(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {_os_error_text(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(
            exc.__cause__, socket.gaierror
        ):
            return f"DNS lookup failed: {_os_error_text(exc)}"
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"connection failed: {_os_error_text(exc)}"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return f"invalid URL {str(exc)!r}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientResponseError | HttpProcessingError):
        return f"invalid HTTP response: {exc.message}"
    if isinstance(exc, ValueError):
        return f"invalid request: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _os_error_text(exc: aiohttp.ClientConnectorError) -> str:
    return exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"
