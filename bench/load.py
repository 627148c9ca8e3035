"""Load generators: single sends at full speed, batches, and a paced rate."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

NUMBER_BASE = 12025551000  # +1 202 555 1000.. : valid, not a sandbox magic number


def number(i: int) -> str:
    return f"+{NUMBER_BASE + i % 9000}"


@dataclass
class Outcome:
    accepted: int
    errors: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def _session(api_key: str, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {api_key}"},
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=120))


async def send_one(session: aiohttp.ClientSession, url: str, i: int,
                   callback: str | None) -> bool:
    """One POST /v1/messages; True when it was accepted (201)."""
    payload = {"to": number(i), "from": "Bench", "body": f"Hello {i}"}
    if callback:
        payload["status_callback"] = callback
    async with session.post(f"{url}/v1/messages", json=payload) as response:
        await response.read()
        return response.status == 201


async def singles(url: str, api_key: str, *, seconds: float, concurrency: int,
                  callback: str | None = None) -> Outcome:
    """As many single POST /v1/messages as ``concurrency`` clients manage in ``seconds``."""
    accepted = errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, worker: int) -> None:
        nonlocal accepted, errors
        i = worker
        while time.perf_counter() < stop_at:
            if await send_one(session, url, i, callback):
                accepted += 1
            else:
                errors += 1
            i += concurrency

    start = time.perf_counter()
    async with _session(api_key, concurrency) as session:
        await asyncio.gather(*(client(session, w) for w in range(concurrency)))
    return Outcome(accepted, errors, time.perf_counter() - start)


async def batches(url: str, api_key: str, *, total: int, batch_size: int,
                  concurrency: int) -> Outcome:
    """``total`` messages through POST /v1/messages/batch, ``concurrency`` requests at a time."""
    accepted = errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start_index in range(0, total, batch_size):
        queue.put_nowait(start_index)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, errors
        while not queue.empty():
            first = queue.get_nowait()
            recipients = [{"to": number(i), "variables": {"n": str(i)}}
                          for i in range(first, min(first + batch_size, total))]
            payload = {"from": "Bench", "body": "Hello {n}", "recipients": recipients}
            async with session.post(f"{url}/v1/messages/batch", json=payload) as response:
                body = await response.json()
                if response.status == 200:
                    accepted += body["accepted"]
                    errors += body["rejected"]
                else:
                    errors += len(recipients)

    start = time.perf_counter()
    async with _session(api_key, concurrency) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return Outcome(accepted, errors, time.perf_counter() - start)


async def paced(url: str, api_key: str, *, rate: float, seconds: float,
                callback: str | None = None) -> Outcome:
    """Single sends at a steady ``rate`` per second (for latency under a known load)."""
    accepted = errors = 0
    total = int(rate * seconds)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal accepted, errors
        if await send_one(session, url, i, callback):
            accepted += 1
        else:
            errors += 1

    start = time.perf_counter()
    tasks = []
    async with _session(api_key, 64) as session:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
    return Outcome(accepted, errors, time.perf_counter() - start)
