"""WebhookSender against a real aiohttp server on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tidings.webhooks.sender import (
    MAX_RESPONSE_BYTES,
    WebhookRequest,
    WebhookResult,
    WebhookSender,
)
from tidings.webhooks.signing import SIGNATURE_HEADER, sign, verify

SECRET = "whsec_sender_test"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] | None


@dataclass
class RecordingServer:
    """An aiohttp app that records every request it gets and counts requests in flight."""

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release_slow: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base_url + path

    async def record(self, request: web.Request) -> None:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.received.append(Received(request.path_qs, dict(request.headers), body, peer))

    async def ok(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(text="thanks")

    async def fail(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(status=500, text="boom")

    async def redirect(self, request: web.Request) -> web.Response:
        await self.record(request)
        raise web.HTTPFound(location=self.url("/ok"))

    async def slow(self, request: web.Request) -> web.Response:
        await self.record(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release_slow.wait(), timeout=10)
        return web.Response(text="too late")

    async def big(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(text="é" * 200_000)  # 400 KB, far past the read cap

    async def endless(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(2000):  # up to 128 MiB unless the client hangs up first
                await response.write(chunk)
        return response

    async def counted(self, request: web.Request) -> web.Response:
        await self.record(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.005)
        finally:
            self.in_flight -= 1
        return web.Response(text="x" * int(request.query["i"]))  # its length tells it


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    recorder = RecordingServer()
    app = web.Application()
    app.router.add_post("/ok", recorder.ok)
    app.router.add_post("/fail", recorder.fail)
    app.router.add_post("/redirect", recorder.redirect)
    app.router.add_post("/slow", recorder.slow)
    app.router.add_post("/big", recorder.big)
    app.router.add_post("/endless", recorder.endless)
    app.router.add_post("/counted", recorder.counted)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    recorder.base_url = f"http://{host}:{port}"
    yield recorder
    recorder.release_slow.set()
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(timeout_seconds=2.0, concurrency=10, allow_private=True) as s:
        yield s


def _request(url: str, body: bytes = b'{"id":"evt_1"}') -> WebhookRequest:
    return WebhookRequest(url=url, body=body, headers={})


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _assert_network_failure(result: WebhookResult) -> None:
    assert not result.ok
    assert result.status_code is None
    assert result.error
    assert len(result.error) <= 200
    assert result.response_bytes is None
    assert result.duration_ms >= 0


async def test_200_is_ok(server: RecordingServer, sender: WebhookSender) -> None:
    result = await sender.send(_request(server.url("/ok")))
    assert result.ok
    assert result.status_code == 200
    assert result.error is None
    assert result.response_bytes == len("thanks")
    assert result.duration_ms > 0
    assert len(server.received) == 1


async def test_500_is_not_ok(server: RecordingServer, sender: WebhookSender) -> None:
    result = await sender.send(_request(server.url("/fail")))
    assert not result.ok
    assert result.status_code == 500
    assert result.error == "HTTP 500"
    assert result.response_bytes == len("boom")


async def test_redirect_is_not_followed(server: RecordingServer, sender: WebhookSender) -> None:
    result = await sender.send(_request(server.url("/redirect")))
    assert not result.ok
    assert result.status_code == 302
    assert result.error is not None
    assert "redirect" in result.error
    assert [r.path for r in server.received] == ["/redirect"]


async def test_headers_and_body_arrive_exactly(
    server: RecordingServer, sender: WebhookSender
) -> None:
    body = '{"text":"héllo \\u2603","n":1}'.encode() + b"\x00\xff"
    signature = sign(SECRET, body, timestamp=1_700_000_000)
    request = WebhookRequest(
        url=server.url("/ok"),
        body=body,
        headers={SIGNATURE_HEADER: signature, "Tidings-Event-Id": "evt_123"},
    )
    result = await sender.send(request)
    assert result.ok
    [received] = server.received
    assert received.body == body
    assert received.headers[SIGNATURE_HEADER] == signature
    assert received.headers["Tidings-Event-Id"] == "evt_123"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"] == "Tidings-Webhooks/0.1"
    assert received.headers["Accept-Encoding"] == "identity"
    assert "Cookie" not in received.headers
    verify(SECRET, received.body, received.headers[SIGNATURE_HEADER], now=1_700_000_000)


async def test_caller_may_override_content_type(
    server: RecordingServer, sender: WebhookSender
) -> None:
    request = WebhookRequest(
        url=server.url("/ok"), body=b"{}", headers={"content-type": "application/cloudevents+json"}
    )
    assert (await sender.send(request)).ok
    [received] = server.received
    assert received.headers["Content-Type"] == "application/cloudevents+json"


async def test_custom_user_agent(server: RecordingServer) -> None:
    async with WebhookSender(timeout_seconds=2, concurrency=1, user_agent="Custom/1",
                             allow_private=True) as sender:
        assert (await sender.send(_request(server.url("/ok")))).ok
    assert server.received[0].headers["User-Agent"] == "Custom/1"


async def test_connection_refused(sender: WebhookSender) -> None:
    result = await sender.send(_request(f"http://127.0.0.1:{_closed_port()}/hook"))
    _assert_network_failure(result)
    assert result.error == "connection refused"


async def test_timeout(server: RecordingServer) -> None:
    async with WebhookSender(timeout_seconds=0.3, concurrency=2, allow_private=True) as sender:
        result = await sender.send(_request(server.url("/slow")))
    _assert_network_failure(result)
    assert result.error == "timeout"
    assert 250 <= result.duration_ms < 5000


@pytest.mark.parametrize(
    "url", ["not a url", "", "ftp://127.0.0.1/hook", "http://", "http://exa mple.com/", "/relative"]
)
async def test_invalid_url(sender: WebhookSender, url: str) -> None:
    _assert_network_failure(await sender.send(_request(url)))


async def test_unresolvable_host(sender: WebhookSender) -> None:
    _assert_network_failure(await sender.send(_request("http://no-such-host.invalid/hook")))


async def test_tls_to_plain_http_server(server: RecordingServer, sender: WebhookSender) -> None:
    url = server.url("/ok").replace("http://", "https://")
    _assert_network_failure(await sender.send(_request(url)))


async def test_header_injection_is_a_failure_not_a_crash(
    server: RecordingServer, sender: WebhookSender
) -> None:
    request = WebhookRequest(
        url=server.url("/ok"), body=b"{}", headers={"X-Bad": "a\r\nInjected: yes"}
    )
    result = await sender.send(request)
    assert not result.ok
    assert all("Injected" not in r.headers for r in server.received)


async def test_garbage_response_is_a_failure() -> None:
    async def reply_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    garbage = await asyncio.start_server(reply_garbage, "127.0.0.1", 0)
    port = garbage.sockets[0].getsockname()[1]
    try:
        async with WebhookSender(timeout_seconds=2, concurrency=1, allow_private=True) as sender:
            result = await sender.send(_request(f"http://127.0.0.1:{port}/hook"))
    finally:
        garbage.close()
        await garbage.wait_closed()
    _assert_network_failure(result)


async def test_huge_response_is_capped(server: RecordingServer, sender: WebhookSender) -> None:
    result = await sender.send(_request(server.url("/big")))
    assert result.ok
    assert result.response_bytes == MAX_RESPONSE_BYTES


async def test_endless_response_is_not_read_to_the_end(
    server: RecordingServer, sender: WebhookSender
) -> None:
    result = await sender.send(_request(server.url("/endless")))
    assert result.ok
    assert result.response_bytes == MAX_RESPONSE_BYTES


async def test_send_many_bounded_and_ordered(
    server: RecordingServer, sender: WebhookSender
) -> None:
    requests = [_request(server.url(f"/counted?i={i}"), body=b'{"i":%d}' % i) for i in range(200)]
    results = await sender.send_many(requests)
    assert [r.response_bytes for r in results] == list(range(200))
    assert all(r.ok for r in results)
    assert len(server.received) == 200
    assert 1 < server.max_in_flight <= 10
    # One shared keep-alive pool: never more connections than the concurrency limit.
    assert len({r.peer for r in server.received}) <= 10


async def test_send_many_mixes_successes_and_failures(
    server: RecordingServer, sender: WebhookSender
) -> None:
    urls = [server.url("/ok"), server.url("/fail"), "not a url", server.url("/redirect")]
    results = await sender.send_many([_request(u) for u in urls])
    assert [r.status_code for r in results] == [200, 500, None, 302]
    assert [r.ok for r in results] == [True, False, False, False]


async def test_send_many_empty(sender: WebhookSender) -> None:
    assert await sender.send_many([]) == []


async def test_send_before_start_is_a_programming_error() -> None:
    sender = WebhookSender(timeout_seconds=1, concurrency=1)
    with pytest.raises(RuntimeError, match="start"):
        await sender.send(_request("http://127.0.0.1:1/"))
    with pytest.raises(RuntimeError, match="start"):
        await sender.send_many([])


async def test_start_and_close_are_idempotent(server: RecordingServer) -> None:
    sender = WebhookSender(timeout_seconds=1, concurrency=1, allow_private=True)
    await sender.start()
    await sender.start()
    assert (await sender.send(_request(server.url("/ok")))).ok
    await sender.close()
    await sender.close()


@pytest.mark.parametrize("kwargs", [{"timeout_seconds": 0, "concurrency": 1},
                                    {"timeout_seconds": 1, "concurrency": 0}])
def test_invalid_construction(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - two distinct messages
        WebhookSender(**kwargs)  # type: ignore[arg-type]


async def test_credentials_in_the_url_are_sent_as_basic_authorization(
    server: RecordingServer, sender: WebhookSender
) -> None:
    url = server.url("/ok").replace("http://", "http://hooks:s%40cret@")
    assert (await sender.send(_request(url))).ok
    [received] = server.received
    assert received.headers["Authorization"] == "Basic aG9va3M6c0BjcmV0"  # hooks:s@cret
