"""A hanging endpoint holds its own slots only; tenants take turns within a batch.

The hanging endpoint is held by an event, never by time: the tests assert what was
received while it holds, then release it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from tidings.webhooks.scheduling import STALL_SECONDS, BatchTurns, Slots, fair_order
from tidings.webhooks.sender import WebhookRequest, WebhookSender, origin_of

PER_ORIGIN = 2


@dataclass
class Endpoint:
    """An HTTP/1.1 endpoint on loopback that answers 204, or holds every request
    until ``release`` is set when ``hangs``."""

    hangs: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[str] = field(default_factory=list)  # request targets, in order
    open: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(30), self.changed:  # a safety net, not a measure
            await self.changed.wait_for(done)

    async def _arrived(self, target: str) -> None:
        async with self.changed:
            self.received.append(target)
            self.open += 1
            self.changed.notify_all()

    async def _answered(self) -> None:
        async with self.changed:
            self.open -= 1
            self.changed.notify_all()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r")[0])
                await reader.readexactly(length)
                target = head.split(b" ")[1].decode()
                await self._arrived(target)
                if self.hangs:
                    await self.release.wait()
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
                await self._answered()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    hanging, answering = Endpoint(hangs=True), Endpoint()
    servers = []
    for endpoint in (hanging, answering):
        server = await asyncio.start_server(endpoint.serve, "127.0.0.1", 0)
        endpoint.port = server.sockets[0].getsockname()[1]
        servers.append(server)
    yield hanging, answering
    hanging.release.set()
    for server in servers:
        server.close()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(timeout_seconds=60, concurrency=16,
                             origin_concurrency=PER_ORIGIN, allow_private=True) as made:
        yield made


def requests(hanging: Endpoint, answering: Endpoint, count: int) -> list[WebhookRequest]:
    """Alternately to the hanging endpoint (tenant "slow") and the answering one."""
    return [WebhookRequest(endpoint.url(f"/{tenant}/{n}"), b"{}", {}, tenant=tenant)
            for n in range(count)
            for endpoint, tenant in ((hanging, "slow"), (answering, "quick"))]


async def test_an_answering_endpoint_is_not_held_up_by_a_hanging_one(
        sender: WebhookSender, endpoints: tuple[Endpoint, Endpoint]) -> None:
    hanging, answering = endpoints
    batch = asyncio.create_task(sender.send_many(requests(hanging, answering, 10)))

    await answering.until(lambda: len(answering.received) == 10)
    await hanging.until(lambda: hanging.open == PER_ORIGIN)
    # Every answering delivery is done while the hanging endpoint holds its capped slots.
    assert hanging.received == ["/slow/0", "/slow/1"]
    assert not batch.done()

    hanging.release.set()
    results = await batch
    assert all(r.ok for r in results)
    assert sorted(hanging.received) == sorted(f"/slow/{n}" for n in range(10))


async def test_another_batch_defers_what_waits_on_a_busy_endpoint(
        sender: WebhookSender, endpoints: tuple[Endpoint, Endpoint]) -> None:
    """Two worker loops: the second batch's webhooks to the endpoint the first one
    holds come back deferred at once (claimed again later), the rest are sent."""
    hanging, answering = endpoints
    first = asyncio.create_task(sender.send_many(
        [WebhookRequest(hanging.url(f"/first/{n}"), b"{}", {}) for n in range(3)]))
    await hanging.until(lambda: hanging.open == PER_ORIGIN)

    second = await sender.send_many(requests(hanging, answering, 3))
    assert [(r.ok, r.deferred) for r in second] == [(False, True), (True, False)] * 3
    assert [r.error for r in second if r.deferred] == ["deferred"] * 3
    assert hanging.received == ["/first/0", "/first/1"]
    assert len(answering.received) == 3
    assert not first.done()

    hanging.release.set()
    assert all(r.ok for r in await first)


async def test_a_batch_takes_its_tenants_in_turn(endpoints: tuple[Endpoint, Endpoint]) -> None:
    _, answering = endpoints
    batch = [WebhookRequest(answering.url(f"/{tenant}/{n}"), b"{}", {}, tenant=tenant)
             for tenant, count in (("big", 4), ("small", 1), ("mid", 2)) for n in range(count)]
    async with WebhookSender(timeout_seconds=60, concurrency=1,
                             allow_private=True) as one_at_a_time:
        assert all(r.ok for r in await one_at_a_time.send_many(batch))
    assert answering.received == ["/big/0", "/small/0", "/mid/0", "/big/1", "/mid/1",
                                  "/big/2", "/big/3"]


def test_fair_order_keeps_each_tenants_order() -> None:
    assert fair_order(["a", "a", "a", "b"]) == [0, 3, 1, 2]
    assert fair_order([]) == []
    assert fair_order(["a", "b", "a", "c", "b"]) == [0, 1, 3, 2, 4]


async def test_a_batch_stops_starting_requests_after_its_timeout(
        endpoints: tuple[Endpoint, Endpoint]) -> None:
    """What a batch has not started when its first requests time out comes back
    deferred: a batch never waits on one endpoint's slots for more than a timeout."""
    hanging, _ = endpoints
    batch = [WebhookRequest(hanging.url(f"/{n}"), b"{}", {}) for n in range(3)]
    async with WebhookSender(timeout_seconds=0.2, concurrency=4, origin_concurrency=1,
                             allow_private=True) as sender:
        results = await sender.send_many(batch)
    assert [(r.error, r.deferred) for r in results] == [
        ("timeout", False), ("deferred", True), ("deferred", True)]
    assert hanging.received == ["/0"]


async def test_a_batch_waits_for_a_full_endpoint_that_answers_and_defers_a_stalled_one() -> None:
    """Another batch holds the endpoint's slots. While the endpoint answers (a
    request finished within STALL_SECONDS) this batch waits for a slot; once
    nothing has finished for longer, it defers."""
    now = [100.0]
    slots = Slots(total=4, per_origin=2, clock=lambda: now[0])
    for _ in range(2):  # another batch's requests
        slots.take("https://a")
    slots.give_back("https://a")  # one answered just now
    slots.take("https://a")  # and the next took its slot

    waiting = asyncio.create_task(BatchTurns(slots, ["https://a"], [""],
                                             patience_seconds=60).next())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    slots.give_back("https://a")
    assert await waiting == 0

    now[0] += STALL_SECONDS + 0.5  # still full, and no answer for longer than that
    assert await BatchTurns(slots, ["https://a"], [""], patience_seconds=60).next() is None
    for _ in range(2):  # full, and never answered since it was idle
        slots.take("https://b")
    assert await BatchTurns(slots, ["https://b"], [""], patience_seconds=60).next() is None


async def test_an_endpoint_that_earned_slots_and_then_hangs_still_leaves_room_for_others(
        endpoints: tuple[Endpoint, Endpoint]) -> None:
    """The endpoint answers promptly, earns slots up to its ceiling (three quarters of
    the sender's), then hangs: the requests it holds never exceed that ceiling, and
    another endpoint's webhooks still all go through meanwhile."""
    becomes_slow, answering = endpoints
    becomes_slow.hangs = False
    async with WebhookSender(timeout_seconds=60, concurrency=8, origin_concurrency=2,
                             origin_concurrency_max=64, allow_private=True) as sender:
        origin = origin_of(becomes_slow.url("/"))
        warm_up = [WebhookRequest(becomes_slow.url(f"/warm/{n}"), b"{}", {})
                   for n in range(40)]
        assert all(r.ok for r in await sender.send_many(warm_up))
        assert sender._slots.limit(origin) == 6  # earned: 2 -> 6 = 8 - 8 // 4

        becomes_slow.hangs = True
        batch = asyncio.create_task(sender.send_many(requests(becomes_slow, answering, 10)))
        await answering.until(lambda: len(answering.received) == 10)
        await becomes_slow.until(lambda: becomes_slow.open == 6)
        assert len([t for t in becomes_slow.received if t.startswith("/slow/")]) == 6
        assert not batch.done()
        becomes_slow.release.set()
        assert all(r.ok for r in await batch)
