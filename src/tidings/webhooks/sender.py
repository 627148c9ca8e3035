"""HTTP delivery of webhooks over one shared, bounded pool of keep-alive connections.

The sender knows nothing about events, endpoints or the database: it POSTs prepared
bodies with prepared headers (including the signature) and reports what happened. Network
failures never raise; they come back as a :class:`WebhookResult` with ``ok=False``.
The HTTP itself is ``tidings.webhooks.http1``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from tidings.webhooks.adaptive import PROMPT_SECONDS, Signal
from tidings.webhooks.destinations import DestinationPolicy, RefusedDestination
from tidings.webhooks.http1 import (
    MAX_HEAD_BYTES,
    ConnectError,
    Http1Client,
    InvalidResponse,
    InvalidURL,
    ProxyError,
    ResponseHeadTooLarge,
    ServerDisconnected,
    split_url,
)
from tidings.webhooks.scheduling import BatchTurns, Slots

DEFAULT_USER_AGENT = "Tidings-Webhooks/0.1"
MAX_RESPONSE_BYTES = 64 * 1024
"""At most this much of a response body is read; the rest is discarded with the connection."""
MAX_ERROR_CHARS = 200
KEEPALIVE_SECONDS = 30.0

_NETWORK_ERRORS = (RefusedDestination, ConnectError, ProxyError, ServerDisconnected,
                   InvalidResponse, TimeoutError, OSError, ValueError)


@dataclass(frozen=True)
class WebhookRequest:
    """One prepared delivery: where to POST, the exact body, and extra headers."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    tenant: str = ""  # a batch takes its tenants in turn


@dataclass(frozen=True)
class WebhookResult:
    """The outcome of one delivery attempt, ready to be stored as an attempt record.

    ``ok`` means a 2xx response. ``status_code`` is ``None`` when no response arrived.
    ``error`` is a short description of the failure (``None`` on success), and
    ``response_bytes`` the length of the body read (``None`` when no response came):
    what a client's endpoint answers is never kept, nor shown to the client.
    """

    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    response_bytes: int | None
    deferred: bool = False  # not sent: its origin was held, stalled, by other requests


class WebhookSender:
    """Delivers webhooks with at most ``concurrency`` requests in flight, and at most
    ``origin_concurrency`` of them to one origin (scheme, host, port): an endpoint that
    hangs holds its own slots only (:mod:`tidings.webhooks.scheduling`). With
    ``origin_concurrency_max``, an origin that answers promptly earns more, up to that
    (:func:`origin_ceiling`), and one that fails drops back (:mod:`tidings.webhooks.adaptive`).

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
        origin_concurrency: int = 8,
        origin_concurrency_max: int | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
        allow_private: bool = False,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if concurrency < 1 or origin_concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._timeout_seconds = timeout_seconds
        self._concurrency = concurrency
        # Uncompressed responses only: the length read is the length sent.
        self._base_headers = {"User-Agent": user_agent, "Accept-Encoding": "identity",
                              "Content-Type": "application/json"}
        self._ssl_context = ssl_context  # None: the system's trusted CAs
        self._destinations = DestinationPolicy(allow_private=allow_private)
        self._client: Http1Client | None = None
        self._slots = Slots(total=concurrency, per_origin=origin_concurrency,
                            per_origin_max=origin_ceiling(concurrency, origin_concurrency_max))

    async def start(self) -> None:
        """Open the shared connection pool (idempotent)."""
        if self._client is None:
            self._client = Http1Client(max_idle=self._concurrency,
                                       keepalive_seconds=KEEPALIVE_SECONDS,
                                       response_limit=MAX_RESPONSE_BYTES,
                                       ssl_context=self._ssl_context,
                                       destinations=self._destinations)

    async def close(self) -> None:
        """Close the pool and its connections (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

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
        client = self._require_client()
        origin = origin_of(request.url)
        taken_at = await self._slots.acquire(origin)
        result: WebhookResult | None = None
        try:
            result = await self._deliver(client, request)
            return result
        finally:
            self._slots.give_back(origin, signal_of(result), taken_at=taken_at)

    async def send_many(self, requests: Sequence[WebhookRequest], *,
                        on_result: Callable[[int, WebhookResult], None] | None = None,
                        ) -> list[WebhookResult]:
        """Send concurrently, within the slots; results are in input order.

        ``on_result(index, result)`` is called as each request gets its outcome (not for
        those deferred), so the caller can record it at once rather than when the whole
        batch ends.

        A request not started within ``timeout_seconds``, or waiting only on a stalled
        origin that other batches hold, comes back ``deferred``: a batch lasts at most
        about two timeouts whatever its endpoints do. A few lanes take the requests in turn
        rather than a task per request: a batch of hundreds costs a handful of tasks.
        """
        client = self._require_client()
        results: list[WebhookResult] = [DEFERRED] * len(requests)
        turns = BatchTurns(self._slots, [origin_of(r.url) for r in requests],
                           [r.tenant for r in requests],
                           patience_seconds=self._timeout_seconds)

        async def lane() -> None:
            while (index := await turns.next()) is not None:
                result: WebhookResult | None = None
                try:
                    result = results[index] = await self._deliver(client, requests[index])
                finally:
                    turns.finished(index, signal_of(result))
                if on_result is not None:
                    on_result(index, results[index])

        await asyncio.gather(*(lane() for _ in range(min(self._concurrency, len(requests)))))
        return results

    def _require_client(self) -> Http1Client:
        if self._client is None:
            raise RuntimeError("WebhookSender.start() has not been called")
        return self._client

    async def _deliver(self, client: Http1Client, request: WebhookRequest) -> WebhookResult:
        started = time.perf_counter()
        try:
            response = await client.post(request.url, request.body,
                                         {**self._base_headers, **request.headers},
                                         timeout=self._timeout_seconds)
        except _NETWORK_ERRORS as exc:
            return WebhookResult(ok=False, status_code=None, error=describe_error(exc),
                                 duration_ms=_elapsed_ms(started), response_bytes=None)
        status = response.status
        ok = 200 <= status < 300
        return WebhookResult(ok=ok, status_code=status,
                             error=None if ok else _status_error(status),
                             duration_ms=_elapsed_ms(started),
                             response_bytes=response.length)


def signal_of(result: WebhookResult | None) -> Signal:
    """What an attempt's outcome says of its origin's capacity (``adaptive.py``)."""
    if result is None:  # the request was cancelled: nothing learnt
        return Signal.NEUTRAL
    if result.ok:
        prompt = result.duration_ms <= PROMPT_SECONDS * 1000
        return Signal.PROMPT if prompt else Signal.NEUTRAL
    if result.status_code is not None:
        overloaded = result.status_code == 429 or result.status_code >= 500
        return Signal.OVERLOAD if overloaded else Signal.NEUTRAL
    return Signal.OVERLOAD if result.error in _OVERLOAD_ERRORS else Signal.NEUTRAL


_OVERLOAD_ERRORS = frozenset({"timeout", "connection refused"})  # describe_error's words


DEFERRED = WebhookResult(ok=False, status_code=None, error="deferred", duration_ms=0.0,
                         response_bytes=None, deferred=True)


def origin_ceiling(concurrency: int, wanted: int | None) -> int | None:
    """The most slots one origin may grow to: ``wanted``, but never more than three
    quarters of all the slots, so that an origin that earned many and then hangs still
    leaves a quarter of them to everyone else."""
    if wanted is None:
        return None
    return max(1, min(wanted, concurrency - max(1, concurrency // 4)))


def origin_of(url: str) -> str:
    """The slots' key of a URL: its scheme, host and port (an invalid URL is its own)."""
    try:
        origin = split_url(url).origin
    except InvalidURL:
        return url
    return f"{origin.scheme}://{origin.host}:{origin.port}"


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
    if isinstance(exc, RefusedDestination):
        return f"refused destination: the host is {exc.reason}"
    if isinstance(exc, ConnectError):
        cause = exc.os_error
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return f"TLS error: {_os_error_text(cause)}"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed: {_os_error_text(cause)}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"connection failed: {_os_error_text(cause)}"
    if isinstance(exc, InvalidURL):
        return f"invalid URL {str(exc)!r}"
    if isinstance(exc, ServerDisconnected):
        return "server disconnected"
    if isinstance(exc, ProxyError):
        return f"proxy error: {exc}"
    if isinstance(exc, ResponseHeadTooLarge):
        return f"response headers too large (over {MAX_HEAD_BYTES // 1024} KiB)"
    if isinstance(exc, InvalidResponse):
        return f"invalid HTTP response: {exc}"
    if isinstance(exc, ValueError):
        return f"invalid request: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _os_error_text(error: OSError) -> str:
    reason = getattr(error, "reason", None)  # ssl.SSLError: the OpenSSL reason
    return str(reason or error.strerror or error or type(error).__name__)


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"
