"""The webhook HTTP/1.1 client against real servers on loopback.

Hand-written asyncio servers play the peers whose behaviour a library server would
hide (a keep-alive connection closed while idle, a body that ends at the close, an
interim 100, garbage); TLS is a real handshake with a certificate of a test CA.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from tidings.webhooks.destinations import DestinationPolicy
from tidings.webhooks.http1 import (
    ConnectError,
    Http1Client,
    InvalidResponse,
    InvalidURL,
    Origin,
    ServerDisconnected,
    Target,
    request_head,
    split_url,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LIMIT = 1024
LOCAL = DestinationPolicy(allow_private=True)  # the test servers listen on loopback


class Peer:
    """A TCP server on 127.0.0.1 that counts its connections."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Peer:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._open.add(writer)
            try:
                await self._handler(reader, writer)
            finally:
                self._open.discard(writer)
                writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Since Python 3.12.1 wait_closed also waits for open connections, and a client
        # keeps its idle keep-alive connection open: a server that stops closes them.
        for writer in list(self._open):
            writer.close()
        await self._server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: its head and its body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head, await reader.readexactly(length)


def answer(status: int = 200, body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
            + body)


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    made = Http1Client(max_idle=4, keepalive_seconds=30, response_limit=LIMIT,
                       destinations=LOCAL)
    yield made
    await made.close()


async def running(handler: Handler) -> Peer:
    return await Peer(handler).start()


async def test_keep_alive_reuses_one_connection(client: Http1Client) -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            writer.write(answer(body=body[::-1]))

    peer = await running(handler)
    try:
        for n in range(5):
            response = await client.post(peer.url(f"/hook?n={n}"), b"abc%d" % n,
                                         {"Tidings-Event-Id": "evt_1"}, timeout=5)
            assert (response.status, response.length) == (200, 4)
    finally:
        await peer.stop()
    assert peer.connections == 1
    assert heads[0].startswith(b"POST /hook?n=0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % peer.port)
    assert b"\r\nTidings-Event-Id: evt_1\r\n" in heads[0]


async def test_a_connection_the_server_closed_while_idle_is_replaced(
        client: Http1Client) -> None:
    async def one_request_then_close(reader: asyncio.StreamReader,
                                     writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())  # says keep-alive (HTTP/1.1), then closes anyway
        await writer.drain()

    peer = await running(one_request_then_close)
    try:
        for _ in range(3):
            assert (await client.post(peer.url(), b"{}", {}, timeout=5)).status == 200
            await asyncio.sleep(0.05)  # the close reaches the idle connection
    finally:
        await peer.stop()
    assert peer.connections == 3


async def test_a_reused_connection_lost_before_any_answer_is_tried_once_more(
        client: Http1Client) -> None:
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            requests += 1
            if requests == 2:
                return  # the second request finds a dead connection: no answer at all
            writer.write(answer())

    peer = await running(handler)
    try:
        assert (await client.post(peer.url(), b"{}", {}, timeout=5)).status == 200
        assert (await client.post(peer.url(), b"{}", {}, timeout=5)).status == 200
    finally:
        await peer.stop()
    assert (requests, peer.connections) == (3, 2)


async def test_a_fresh_connection_lost_before_the_answer_is_an_error(
        client: Http1Client) -> None:
    async def hang_up(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    peer = await running(hang_up)
    try:
        with pytest.raises(ServerDisconnected):
            await client.post(peer.url(), b"{}", {}, timeout=5)
    finally:
        await peer.stop()
    assert peer.connections == 1  # not sent again


async def test_connection_close_chunked_and_until_close_bodies(client: Http1Client) -> None:
    replies = iter([
        answer(body=b"closing", extra=b"Connection: close\r\n"),
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the close",
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer(201, b"after 100"),
    ])

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(next(replies))
        await writer.drain()

    peer = await running(handler)
    try:
        got = [await client.post(peer.url(), b"{}", {}, timeout=5) for _ in range(4)]
    finally:
        await peer.stop()
    assert [(r.status, r.length) for r in got] == [
        (200, len(b"closing")), (202, len(b"abcde")), (200, len(b"until the close")),
        (201, len(b"after 100"))]


async def test_a_long_body_is_cut_at_the_limit_and_the_connection_dropped(
        client: Http1Client) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        try:
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionError:
            return

    peer = await running(endless)
    try:
        response = await client.post(peer.url(), b"{}", {}, timeout=5)
        again = await client.post(peer.url(), b"{}", {}, timeout=5)
    finally:
        await peer.stop()
    assert (response.status, response.length) == (200, LIMIT)
    assert again.length == LIMIT
    assert peer.connections == 2  # the cut connection was not reused


@pytest.mark.parametrize("reply", [b"THIS IS NOT HTTP\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                   b"\x00\xff" * 50])
async def test_garbage_answers_are_invalid_responses(client: Http1Client, reply: bytes) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(0.2)

    peer = await running(garbage)
    try:
        with pytest.raises((InvalidResponse, ServerDisconnected)):
            await client.post(peer.url(), b"{}", {}, timeout=5)
    finally:
        await peer.stop()


async def test_bytes_nobody_asked_for_spoil_the_idle_connection(client: Http1Client) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(answer())
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")  # unasked

    peer = await running(chatty)
    try:
        assert (await client.post(peer.url(), b"{}", {}, timeout=5)).length == 2
        await asyncio.sleep(0.2)
        assert (await client.post(peer.url(), b"{}", {}, timeout=5)).length == 2
    finally:
        await peer.stop()
    assert peer.connections == 2


async def test_the_deadline_covers_a_silent_server(client: Http1Client) -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    peer = await running(silent)
    try:
        with pytest.raises(TimeoutError):
            await client.post(peer.url(), b"{}", {}, timeout=0.3)
    finally:
        await peer.stop()


async def test_https_with_a_trusted_certificate_and_one_that_is_not(
        tmp_path: object) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        writer.write(answer(body=b"tls:" + body))
        await writer.drain()

    peer = await Peer(handler).start(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    with_ca = Http1Client(max_idle=2, keepalive_seconds=30, response_limit=LIMIT,
                          ssl_context=trusting, destinations=LOCAL)
    system_cas = Http1Client(max_idle=2, keepalive_seconds=30, response_limit=LIMIT,
                             destinations=LOCAL)
    try:
        response = await with_ca.post(peer.url(scheme="https"), b"hi", {}, timeout=5)
        with pytest.raises(ConnectError) as refused:
            await system_cas.post(peer.url(scheme="https"), b"hi", {}, timeout=5)
    finally:
        await with_ca.close()
        await system_cas.close()
        await peer.stop()
    assert (response.status, response.length) == (200, len(b"tls:hi"))
    assert isinstance(refused.value.os_error, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("url", ["", "not a url", "ftp://h/x", "http://", "http:///x",
                                 "http://exa mple.com/", "http://h:99999/", "http://h:x/",
                                 "/relative", "http://h/a b", "http://h/\r\nX: y",
                                 "http://user@/x", "http://a@b@/x"])
def test_urls_that_are_not_absolute_http_are_refused(url: str) -> None:
    for _ in range(2):  # parsed URLs are kept: a refused one must be refused again
        with pytest.raises(InvalidURL):
            split_url(url)


def test_every_token_character_makes_a_header_name() -> None:
    tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    head = request_head(Origin("http", "h", 80), "/", {tchars: "v", "X-Empty": ""}, 0)
    assert f"\r\n{tchars}: v\r\nX-Empty: \r\n".encode() in head


def test_urls_give_an_origin_a_target_and_credentials() -> None:
    assert split_url("HTTPS://Example.com/a/b?c=1#frag") == Target(
        Origin("https", "example.com", 443), "/a/b?c=1", None)
    assert split_url("http://[::1]:8080") == Target(Origin("http", "::1", 8080), "/", None)
    # user:password@ is sent as Basic authorization, percent-decoded first
    assert split_url("https://hook%40acme:p%3Ass@h/x").authorization == \
        "Basic " + base64.b64encode(b"hook@acme:p:ss").decode()
    assert Origin("http", "::1", 8080).host_header == "[::1]:8080"
    assert Origin("https", "example.com", 443).host_header == "example.com"


@pytest.mark.parametrize("headers", [{"X-Bad": "a\r\nInjected: yes"}, {"X-Bad": "a\nb"},
                                     {"Bad Name": "v"}, {"": "v"}, {"X:Y": "v"},
                                     {"X-Nul": "a\x00b"}, {"X-Wide": "snow \u2603"},
                                     {"N\u00e4me": "v"}, {"X-Tab\t": "v"}, {"X-End\n": "v"}])
def test_headers_that_would_break_the_request_are_refused(headers: dict[str, str]) -> None:
    for _ in range(2):  # the checked names are kept: a refused set must be refused again
        with pytest.raises(ValueError):  # noqa: PT011 - InvalidURL is not among them
            request_head(Origin("http", "h", 80), "/", headers, 2)


def test_a_later_header_replaces_one_of_the_same_name_and_host_is_ours() -> None:
    head = request_head(Origin("http", "h", 80), "/x",
                        {"Content-Type": "application/json", "content-type": "text/plain",
                         "Host": "evil", "Content-Length": "999"}, 2)
    assert head == (b"POST /x HTTP/1.1\r\nHost: h\r\ncontent-type: text/plain\r\n"
                    b"Content-Length: 2\r\n\r\n")
