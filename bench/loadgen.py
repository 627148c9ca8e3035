"""The SMPP bench's load generators, each run in a process of its own.

    python -m bench.loadgen '<spec as JSON>'   (the API key in BENCH_API_KEY)

A generator with a cost of its own per request hands the system that needs more
requests a handicap: Kannel takes one ``GET`` a message where Tidings' batch path
takes one ``POST`` per thousand. So every system is driven the same way here: the
requests are encoded before the clock starts, then written as bytes on keep-alive
sockets (raw asyncio streams, no client object per request), ``concurrency`` in
flight. The process reports its own CPU seconds while it drives, so the cost of the
load is shown per system, apart from the receiver's.

Modes: ``kannel`` (``GET /cgi-bin/sendsms``, 202), ``tidings-single`` (``POST
/v1/messages``, 201), ``tidings-batch`` (``POST /v1/messages/batch``, the count in
the answer) and ``kannel-aiohttp``: the aiohttp generator the bench used before,
kept to show what a generator with a client object per request costs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from bench.smpp_harness import Phase, destination, send_at_rate, send_flat_out

API_KEY_ENV = "BENCH_API_KEY"
ROOT = Path(__file__).resolve().parent.parent
MODES = ("kannel", "kannel-aiohttp", "tidings-single", "tidings-batch")


# --- requests, encoded once ------------------------------------------------------------

def sendsms_request(host: str, i: int, dlr_url: str) -> bytes:
    """Kannel's ``GET /cgi-bin/sendsms`` for message ``i``, delivery report to ``dlr_url``
    with the destination and Kannel's ``%d`` (the report's type) in its query."""
    to = destination(i)
    query = urlencode({"username": "bench", "password": "bench", "from": "Bench", "to": to,
                       "text": f"Hello {i}", "dlr-mask": "3",
                       "dlr-url": f"{dlr_url}?to={to.lstrip('+')}&type=%d"})
    return f"GET /cgi-bin/sendsms?{query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def post_request(host: str, path: str, api_key: str, payload: dict[str, Any]) -> bytes:
    body = orjson.dumps(payload)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def message_request(host: str, api_key: str, i: int) -> bytes:
    """One ``POST /v1/messages``: message ``i`` alone, as Kannel gets it."""
    return post_request(host, "/v1/messages", api_key,
                        {"to": destination(i), "from": "Bench", "body": f"Hello {i}"})


def batch_request(host: str, api_key: str, first: int, end: int) -> bytes:
    """One ``POST /v1/messages/batch`` of messages ``first`` .. ``end - 1``."""
    recipients = [{"to": destination(i), "variables": {"n": str(i)}} for i in range(first, end)]
    return post_request(host, "/v1/messages/batch", api_key,
                        {"from": "Bench", "body": "Hello {n}", "recipients": recipients})


# --- responses -------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    status: int
    length: int
    close: bool  # the server closes the connection after this response


def parse_head(head: bytes) -> Head:
    """An HTTP/1.x response head (through its blank line). Only ``Content-Length``
    bodies: a chunked answer, or one without a length, is refused rather than misread."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ValueError("chunked responses are not supported")
    length = headers.get("content-length")
    if length is None or not length.isdigit():
        raise ValueError(f"response without a usable Content-Length: {length!r}")
    connection = headers.get("connection", "")
    close = "close" in connection or (parts[0] == "HTTP/1.0" and "keep-alive" not in connection)
    return Head(int(parts[1]), int(length), close)


Taken = Callable[[int, bytes], int]  # (status, body) -> messages the request got accepted


def taken_if(status: int) -> Taken:
    return lambda got, _body: int(got == status)


def taken_by_batch(status: int, body: bytes) -> int:
    return int(orjson.loads(body)["accepted"]) if status == 200 else 0


# --- driving ---------------------------------------------------------------------------

@dataclass
class Tally:
    """What a generator did: messages accepted, requests by status (0: no answer), the
    time from its first request to its last answer, and its own CPU seconds meanwhile."""

    accepted: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    started_at: float = 0.0  # Unix time of the first request
    # The generator process's CPU outside the driving: Python's start, the encoding.
    setup_cpu_seconds: float = 0.0


async def drive(host: str, port: int, requests: Sequence[bytes], taken: Taken, *,
                concurrency: int, rate: float | None = None) -> Tally:
    """Writes ``requests`` on ``concurrency`` keep-alive connections, one in flight on
    each; at ``rate`` requests a second when given (request k at k / rate), else flat out.
    A request whose connection fails counts under status 0 and is not sent again."""
    statuses: Counter[int] = Counter()
    accepted = 0
    next_request = iter(range(len(requests)))
    cpu_before, start, started_at = time.process_time(), time.perf_counter(), time.time()

    async def connection() -> None:
        nonlocal accepted
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for k in next_request:
            if rate is not None:
                await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            if streams is None:
                streams = await asyncio.open_connection(host, port)
            reader, writer = streams
            try:
                writer.write(requests[k])
                head = parse_head(await reader.readuntil(b"\r\n\r\n"))
                body = await reader.readexactly(head.length)
            except (OSError, asyncio.IncompleteReadError):
                statuses[0] += 1
                writer.close()
                streams = None
                continue
            statuses[head.status] += 1
            accepted += taken(head.status, body)
            if head.close:
                writer.close()
                streams = None
        if streams is not None:
            streams[1].close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Tally(accepted, dict(statuses), time.perf_counter() - start,
                 time.process_time() - cpu_before, started_at)


# --- the old generator, for its cost ---------------------------------------------------

async def drive_kannel_aiohttp(url: str, dlr_url: str, phase: Phase, *,
                               concurrency: int) -> Tally:
    """The bench's generator before the lean one: aiohttp, its query encoded per request."""
    statuses: Counter[int] = Counter()
    cpu_before, start, started_at = time.process_time(), time.perf_counter(), time.time()

    async def get(session: aiohttp.ClientSession, k: int) -> int:
        i = phase.first + k
        to = destination(i)
        params = {"username": "bench", "password": "bench", "from": "Bench", "to": to,
                  "text": f"Hello {i}", "dlr-mask": "3",
                  "dlr-url": f"{dlr_url}?to={to.lstrip('+')}&type=%d"}
        async with session.get(f"{url}/cgi-bin/sendsms", params=params) as response:
            await response.read()
            statuses[response.status] += 1
            return int(response.status == 202)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        if phase.rate is None:
            accepted = await send_flat_out(phase.count, concurrency, lambda k: get(session, k))
        else:
            accepted = await send_at_rate(phase.count, phase.rate, lambda k: get(session, k))
    return Tally(accepted, dict(statuses), time.perf_counter() - start,
                 time.process_time() - cpu_before, started_at)


# --- one run of a generator ------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """What a generator process sends: ``mode`` (of ``MODES``) to ``url``, messages
    ``first`` .. ``first + count - 1``, at ``rate`` a second (None: flat out)."""

    mode: str
    url: str
    first: int
    count: int
    rate: float | None = None
    concurrency: int = 64
    batch_size: int = 1_000
    dlr_url: str = ""


def encode(spec: Spec, api_key: str) -> tuple[list[bytes], Taken]:
    """The requests of ``spec``, and how to count what each answer accepted. Paced
    batches are a tenth of a second's messages each."""
    host = urlsplit(spec.url).netloc
    end = spec.first + spec.count
    if spec.mode == "kannel":
        return [sendsms_request(host, i, spec.dlr_url) for i in range(spec.first, end)], \
            taken_if(202)
    if spec.mode == "tidings-single":
        return [message_request(host, api_key, i) for i in range(spec.first, end)], \
            taken_if(201)
    if spec.mode == "tidings-batch":
        size = spec.batch_size if spec.rate is None else max(1, round(spec.rate / 10))
        return [batch_request(host, api_key, first, min(first + size, end))
                for first in range(spec.first, end, size)], taken_by_batch
    raise ValueError(f"unknown mode {spec.mode!r}: one of {', '.join(MODES)}")


async def run(spec: Spec, api_key: str) -> Tally:
    if spec.mode == "kannel-aiohttp":
        return await drive_kannel_aiohttp(spec.url, spec.dlr_url,
                                          Phase(spec.first, spec.count, spec.rate),
                                          concurrency=spec.concurrency)
    requests, taken = encode(spec, api_key)
    # A batch is a tenth of a second's messages when paced: its requests go at a tenth
    # of the rate.
    rate = spec.rate
    if rate is not None and spec.mode == "tidings-batch":
        rate = rate * len(requests) / spec.count
    parts = urlsplit(spec.url)
    return await drive(parts.hostname or "127.0.0.1", parts.port or 80, requests, taken,
                       concurrency=spec.concurrency, rate=rate)


async def generate(spec: Spec, api_key: str = "") -> Tally:
    """``spec`` sent by a generator process of its own; its tally."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", json.dumps(asdict(spec)),
        env={**os.environ, API_KEY_ENV: api_key}, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator ({spec.mode}) failed: {err.decode()[-2000:]}")
    tally = json.loads(out)
    return Tally(**{**tally, "statuses": {int(k): v for k, v in tally["statuses"].items()}})


def main() -> None:
    spec = Spec(**json.loads(sys.argv[1]))
    tally = asyncio.run(run(spec, os.environ.get(API_KEY_ENV, "")))
    tally.setup_cpu_seconds = time.process_time() - tally.cpu_seconds
    print(json.dumps(asdict(tally)))


if __name__ == "__main__":
    main()
