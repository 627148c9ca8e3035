"""Slow HTTP clients are timed out and connections are capped (``http_protocol.py``),
against a real uvicorn server on loopback speaking to raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import uvicorn

from tidings.web.http_protocol import ClientLimits, GuardedHttpProtocol

pytestmark = pytest.mark.timeout(30)
HEAD = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"


class Quick(GuardedHttpProtocol):
    limits: ClassVar[ClientLimits | None] = ClientLimits(
        header_seconds=0.3, body_seconds=0.3, max_connections=3)


class EchoApp:
    """Reads the whole body and echoes it; remembers whether a request was cut off."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[tuple[EchoApp, int]]:
    app = EchoApp()
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=Quick, loop="asyncio",
                            lifespan="off", log_level="warning", timeout_keep_alive=5,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield app, port
    server.should_exit = True
    await task


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def answer_then_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout=10)


async def request(port: int, body: bytes = b"0123456789") -> bytes:
    reader, writer = await connect(port)
    writer.write(HEAD + body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    data = await reader.readexactly(len(body))
    writer.close()
    return head.split(b"\r\n", 1)[0] + b" " + data


async def test_a_connection_that_sends_nothing_gets_408_and_is_closed(
        served: tuple[EchoApp, int]) -> None:
    reader, _ = await connect(served[1])
    assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")


async def test_headers_sent_a_little_at_a_time_get_408(served: tuple[EchoApp, int]) -> None:
    reader, writer = await connect(served[1])
    writer.write(HEAD[:20])
    await writer.drain()
    assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")


async def test_a_body_that_stops_coming_gets_408_and_the_app_stops_waiting(
        served: tuple[EchoApp, int]) -> None:
    app, port = served
    reader, writer = await connect(port)
    writer.write(HEAD + b"0123")  # 4 of 10 bytes
    await writer.drain()
    assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")
    await asyncio.sleep(0.05)
    assert app.disconnects == 1


async def test_requests_on_time_are_served_beside_a_slow_client_and_on_one_connection(
        served: tuple[EchoApp, int]) -> None:
    _, port = served
    slow_reader, slow_writer = await connect(port)
    slow_writer.write(HEAD[:10])
    assert await request(port) == b"HTTP/1.1 200 OK 0123456789"
    # Two requests on one kept-alive connection, the second after the head deadline
    # of the connection's start has passed: each request has its own deadline.
    reader, writer = await connect(port)
    for _ in range(2):
        writer.write(HEAD + b"abcdefghij")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert await reader.readexactly(10) == b"abcdefghij"
        await asyncio.sleep(0.4)
    writer.close()
    assert (await answer_then_close(slow_reader)).startswith(b"HTTP/1.1 408 ")


async def test_connections_beyond_the_cap_are_answered_503_at_once(
        served: tuple[EchoApp, int]) -> None:
    _, port = served
    held = [await connect(port) for _ in range(3)]
    for _, writer in held:
        writer.write(b"P")  # each holds a connection, within its deadline
    reader, _ = await connect(port)
    assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 503 ")
    for _, writer in held:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_slow_head_after_a_quick_request_on_the_connection_is_cut_off(
        served: tuple[EchoApp, int]) -> None:
    """The second request's deadline is later than the timer left by the first: the
    timer must move on to it rather than lapse (the connection would stay open)."""
    reader, writer = await connect(served[1])
    writer.write(HEAD + b"abcdefghij")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert await reader.readexactly(10) == b"abcdefghij"
    await asyncio.sleep(0.1)
    writer.write(HEAD[:20])
    await writer.drain()
    # Closed, without a 408 as the connection's last cycle has already answered.
    assert await answer_then_close(reader) == b""


async def test_requests_on_a_kept_alive_connection_do_not_each_set_a_timer(
        served: tuple[EchoApp, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadlines cost no timer per request (they were a share of the send path's
    CPU): one timer per connection, moved on only when it fires."""
    loop = asyncio.get_running_loop()
    timers = []

    def counting(schedule: Any) -> Any:
        def scheduled(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            # Ours, not uvicorn's keep-alive timer (one per response, uvicorn's own).
            if getattr(callback, "__qualname__", "").startswith("GuardedHttpProtocol."):
                timers.append(callback)
            return schedule(when, callback, *args, **kwargs)
        return scheduled

    monkeypatch.setattr(loop, "call_at", counting(loop.call_at))
    monkeypatch.setattr(loop, "call_later", counting(loop.call_later))
    reader, writer = await connect(served[1])
    for _ in range(20):
        writer.write(HEAD + b"abcdefghij")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert await reader.readexactly(10) == b"abcdefghij"
    writer.close()
    assert len(timers) <= 2
