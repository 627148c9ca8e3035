"""The lean load generator: requests encoded once, written on keep-alive sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aiohttp import web

from bench.loadgen import (
    Head,
    Spec,
    batch_request,
    drive,
    encode,
    generate,
    message_request,
    parse_head,
    sendsms_request,
    taken_by_batch,
    taken_if,
)
from bench.server import free_port


def split(request: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


def test_sendsms_request_carries_kannels_parameters_encoded() -> None:
    line, headers, body = split(sendsms_request("127.0.0.1:13013", 7, "http://h:1/dlr"))
    method, target, version = line.split(" ")
    assert (method, version, headers, body) == ("GET", "HTTP/1.1", {"Host": "127.0.0.1:13013"},
                                                b"")
    url = urlsplit(target)
    assert url.path == "/cgi-bin/sendsms"
    query = {k: v[0] for k, v in parse_qs(url.query, strict_parsing=True).items()}
    assert query == {"username": "bench", "password": "bench", "from": "Bench",
                     "to": "+12022000007", "text": "Hello 7", "dlr-mask": "3",
                     "dlr-url": "http://h:1/dlr?to=12022000007&type=%d"}
    assert "&to=%2B12022000007&" in url.query  # a plus would reach Kannel as a space


def test_message_request_is_one_post_with_its_length() -> None:
    line, headers, body = split(message_request("h:8000", "key_1", 3))
    assert line == "POST /v1/messages HTTP/1.1"
    assert headers == {"Host": "h:8000", "Authorization": "Bearer key_1",
                       "Content-Type": "application/json", "Content-Length": str(len(body))}
    assert orjson.loads(body) == {"to": "+12022000003", "from": "Bench", "body": "Hello 3"}


def test_batch_request_holds_its_messages() -> None:
    _, headers, body = split(batch_request("h:8000", "key_1", 10, 13))
    assert headers["Content-Length"] == str(len(body))
    assert orjson.loads(body) == {"from": "Bench", "body": "Hello {n}", "recipients": [
        {"to": f"+1202200001{i}", "variables": {"n": str(10 + i)}} for i in range(3)]}


def test_encode_makes_one_request_a_message_or_batches_paced_by_tenths() -> None:
    url = "http://127.0.0.1:9"
    assert len(encode(Spec("kannel", url, 0, 5, dlr_url="http://r/dlr"), "")[0]) == 5
    assert len(encode(Spec("tidings-single", url, 100, 5), "k")[0]) == 5
    assert len(encode(Spec("tidings-batch", url, 0, 2_500, batch_size=1_000), "k")[0]) == 3
    paced, _ = encode(Spec("tidings-batch", url, 0, 200, rate=200.0), "k")
    assert len(paced) == 10  # 20 messages a request: a tenth of a second's
    with pytest.raises(ValueError, match="unknown mode"):
        encode(Spec("kannel-http2", url, 0, 1), "")


@pytest.mark.parametrize(("head", "expected"), [
    (b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\n", Head(202, 5, False)),
    (b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
     Head(201, 0, True)),
    (b"HTTP/1.0 202 Accepted\r\nContent-Length: 2\r\n\r\n", Head(202, 2, True)),
    (b"HTTP/1.0 202 Accepted\r\nContent-Length: 2\r\nConnection: Keep-Alive\r\n\r\n",
     Head(202, 2, False)),
])
def test_parse_head(head: bytes, expected: Head) -> None:
    assert parse_head(head) == expected


@pytest.mark.parametrize(("head", "error"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "status line"),
    (b"HTTP/1.1 OK\r\n\r\n", "status line"),
    (b"\x00\xff\r\n\r\n", "status line"),
])
def test_parse_head_refuses_what_it_cannot_read(head: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_head(head)


def test_what_an_answer_accepted() -> None:
    assert (taken_if(202)(202, b""), taken_if(202)(503, b"")) == (1, 0)
    assert taken_by_batch(200, b'{"accepted": 998, "rejected": 2}') == 998
    assert taken_by_batch(400, b'{"title": "bad"}') == 0


class Target:
    """A server that answers 202, keeps each request's query and each connection."""

    def __init__(self, close_every: int = 0) -> None:
        self.queries: list[dict[str, str]] = []
        self.connections: set[object] = set()
        self.close_every = close_every

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        self.connections.add(request.transport)
        headers = ({"Connection": "close"}
                   if self.close_every and len(self.queries) % self.close_every == 0 else {})
        return web.Response(status=202, text="Sent.", headers=headers)


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, int]]:
    found = Target(close_every=7)
    app = web.Application()
    app.router.add_get("/cgi-bin/sendsms", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield found, port
    await runner.cleanup()


async def test_drive_sends_every_request_once_on_few_connections(
        target: tuple[Target, int]) -> None:
    found, port = target
    requests = [sendsms_request(f"127.0.0.1:{port}", i, "http://r/dlr") for i in range(50)]
    before = time.time()
    tally = await drive("127.0.0.1", port, requests, taken_if(202), concurrency=4)
    assert before <= tally.started_at <= time.time()
    assert (tally.accepted, tally.statuses) == (50, {202: 50})
    assert sorted(q["to"] for q in found.queries) == [f"+1202200{i:04d}" for i in range(50)]
    # keep-alive: 4 connections, and one more after each "Connection: close" (every 7th)
    assert 4 < len(found.connections) <= 4 + 50 // 7
    assert tally.cpu_seconds > 0
    assert tally.seconds > 0


async def test_drive_fails_loudly_when_nothing_listens() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectionRefusedError):
        await drive("127.0.0.1", port, [b"GET / HTTP/1.1\r\n\r\n"], taken_if(202),
                    concurrency=1)


async def test_a_request_without_an_answer_counts_as_status_0_and_is_not_sent_again() -> None:
    received: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                received.append(await reader.readuntil(b"\r\n\r\n"))
            except asyncio.IncompleteReadError:
                return
            if len(received) == 2:  # drops the connection instead of answering
                writer.close()
                return
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    requests = [f"GET /{i} HTTP/1.1\r\n\r\n".encode() for i in range(4)]
    async with server:
        tally = await drive("127.0.0.1", port, requests, taken_if(202), concurrency=1)
    assert (tally.accepted, tally.statuses) == (3, {202: 3, 0: 1})
    assert [r.split(b" ")[1] for r in received] == [b"/0", b"/1", b"/2", b"/3"]


async def test_generate_drives_from_a_process_of_its_own(target: tuple[Target, int]) -> None:
    found, port = target
    spec = Spec("kannel", f"http://127.0.0.1:{port}", 100, 30, concurrency=3,
                dlr_url="http://r/dlr")
    tally = await generate(spec)
    assert (tally.accepted, tally.statuses) == (30, {202: 30})
    assert sorted(q["text"] for q in found.queries) == sorted(f"Hello {i}"
                                                              for i in range(100, 130))
    assert tally.cpu_seconds > 0
    assert tally.setup_cpu_seconds > 0  # Python's start: kept apart from the driving


async def test_generate_reports_a_generator_that_failed() -> None:
    with pytest.raises(RuntimeError, match="load generator \\(tidings-batch\\) failed"):
        await generate(Spec("tidings-batch", f"http://127.0.0.1:{free_port()}", 0, 10))
