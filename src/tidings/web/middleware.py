"""Pure ASGI middleware: request ids with an access log and request metrics without
personal data, and a request body limit."""

from __future__ import annotations

import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.core import request_ids
from tidings.core.logs import get_logger
from tidings.web.errors import PayloadTooLarge

log = get_logger("tidings.access")


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413, whether announced or streamed.

    A body without Content-Length (chunked) is read here up to the limit before
    the app sees it: raising from inside the app's body parsing would surface as
    a 400 instead.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await _problem(send, self.max_bytes)
                return
            await self.app(scope, receive, send)
            return
        body = await self._read_limited(receive)
        if body is None:
            await _problem(send, self.max_bytes)
            return
        await self.app(scope, replay_body(body, receive), send)

    async def _read_limited(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read) as one message."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # later reads wait for the disconnect, as usual
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _problem(send: Send, max_bytes: int) -> None:
    err = PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    body = orjson.dumps(err.to_problem())
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestLog:
    """Each request's id, access log line and metrics, in one layer.

    The id is the client's ``X-Request-Id`` if well formed, else a new one: in the
    response's ``X-Request-Id``, on the request's log lines (the access line too), and
    in the jobs it queues. The access line has method, route (never the raw path or the
    query string), status and duration; the runtime's metrics count the same (the
    route's template keeps the label set bounded).

    One pure ASGI layer with one wrapped ``send``, not one middleware for each: every
    request pays for each layer (a coroutine, a closure, a call per message), and on
    the single send that was a measurable share of the CPU (docs/benchmarks.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan passes through
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 0
        request_id = request_ids.accept_or_make(_only_request_id(scope["headers"]))
        header = (request_ids.HEADER, request_id.encode())

        async def tag_and_capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":  # no route sets this header
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        tokens = request_ids.bind(request_id)
        try:
            await self.app(scope, receive, tag_and_capture)
        finally:
            try:
                _record(scope, status, time.perf_counter() - start)
            finally:
                request_ids.unbind(tokens)


def _record(scope: Scope, status: int, seconds: float) -> None:
    """The access log line and the metrics of an answered request."""
    route = _route(scope)
    log.info("request", method=scope["method"], path=route, status=status,
             duration_ms=round(seconds * 1000, 2))
    runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
    if runtime is not None:
        runtime.metrics.observe_request(scope["method"], route, status, seconds)


def _only_request_id(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The client's X-Request-Id, if it sent exactly one."""
    found = None
    for name, value in headers:
        if name == request_ids.HEADER:
            if found is not None:
                return None
            found = value
    return found


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
