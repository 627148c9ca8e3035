"""Pure ASGI middleware: request ids, a request body limit, and an access log and
request metrics without personal data."""

from __future__ import annotations

import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings import request_ids
from tidings.errors import PayloadTooLarge
from tidings.logs import get_logger

log = get_logger("tidings.access")


class _HttpMiddleware:
    """Pure ASGI middleware for HTTP requests; anything else (lifespan) passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


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


class RequestIds(_HttpMiddleware):
    """Each request gets an id (the client's ``X-Request-Id`` if well formed): in the
    response's ``X-Request-Id``, on the request's log lines, and in the jobs it queues."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = [v for k, v in scope["headers"] if k == request_ids.HEADER]
        request_id = request_ids.accept_or_make(given[0] if len(given) == 1 else None)
        header = (request_ids.HEADER, request_id.encode())

        async def tag(message: Message) -> None:
            if message["type"] == "http.response.start":  # no route sets this header
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        tokens = request_ids.bind(request_id)
        try:
            await self.app(scope, receive, tag)
        finally:
            request_ids.unbind(tokens)


class AccessLog(_HttpMiddleware):
    """One line per request: method, route (never the raw path or the query string),
    status, duration; and the same in the runtime's metrics (the route's template keeps
    the label set bounded)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start, status = time.perf_counter(), [0]

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            seconds, route = time.perf_counter() - start, _route(scope)
            log.info("request", method=scope["method"], path=route, status=status[0],
                     duration_ms=round(seconds * 1000, 2))
            runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
            if runtime is not None:
                runtime.metrics.observe_request(scope["method"], route, status[0], seconds)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
