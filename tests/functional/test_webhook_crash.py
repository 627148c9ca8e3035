"""A real ``tidings serve`` SIGKILLed while it delivers hundreds of webhooks, restarted.

The receiver (on loopback) answers every webhook at once until it has had
``HOLD_AFTER`` of them; then it holds every new request open, unanswered. Once the
server has recorded every answer it got (or after ``RECORD_WAIT_SECONDS``, which is
what happens when answers are recorded only at the end of a batch), the server is
killed with requests held: exactly those were in flight. After the restart:

- every webhook arrives at least once;
- the only ones that arrive twice are those held at the kill: at most the requests in
  flight, which the sender caps at ``WEBHOOK_CONCURRENCY``;
- the held ones arrive again within one webhook lease of the moment their lease ran out
  (or of the restart, if that came later): the lease, not the 30 s of other jobs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

from tests.functional.backends import Backend, query_main
from tests.functional.server import TidingsServer, post_endpoint, run_cli_async, tidings_env
from tests.functional.test_crash_recovery import list_all_messages
from tests.pg import role_settings
from tidings.core.settings import Settings

MESSAGES = 150  # three webhooks each (queued, sent, delivered): 450 in all
# Answered webhooks before the receiver starts holding requests: within the first batch
# of webhooks (the 150 "queued" ones, written by one request, claimed together).
HOLD_AFTER = 100
CONCURRENCY = 16  # TIDINGS_WEBHOOK_CONCURRENCY: requests in flight, at most
RECORD_WAIT_SECONDS = 10.0
FINAL_TIMEOUT_SECONDS = 120.0
STATUSES = {"queued", "sent", "delivered"}


@dataclass
class HoldingReceiver:
    url: str = ""
    arrivals: list[tuple[str, str, str, float]] = field(default_factory=list)
    # (event id, message id, status, loop time)
    hold_after: int | None = None  # arrivals answered before it holds every new one
    held: set[str] = field(default_factory=set)  # event ids held open, never answered
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def answered(self) -> int:
        return len(self.arrivals) - len(self.held)


@pytest.fixture
async def receiver() -> AsyncIterator[HoldingReceiver]:
    rec = HoldingReceiver()
    loop = asyncio.get_running_loop()

    async def handle(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        rec.arrivals.append((body["id"], body["data"]["message_id"], body["data"]["status"],
                             loop.time()))
        if rec.hold_after is not None and len(rec.arrivals) > rec.hold_after:
            rec.held.add(body["id"])
            await rec.release.wait()
        return web.Response(text="ok")

    async with post_endpoint(handle) as rec.url:
        yield rec
        rec.release.set()


async def recorded_answers(backend: Backend, data_dir: Path) -> int:
    [(count,)] = await query_main(backend, data_dir,
                                  "SELECT COUNT(*) FROM webhook_attempts WHERE status_code = 200")
    return int(count)


async def wait_for(condition: object, timeout: float) -> bool:
    """Poll ``condition`` (an async callable) until true or ``timeout``: whether it was."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_crash_resends_only_the_webhooks_in_flight_within_the_lease(
        tmp_path: Path, backend: Backend, receiver: HoldingReceiver) -> None:
    data_dir = tmp_path / "data"
    lease = Settings().webhook_lease_seconds  # the default an operator gets
    poll = Settings().worker_poll_seconds
    env = tidings_env(data_dir, database_url=backend.database_url,
                      **role_settings(backend.database_url),
                      webhook_concurrency=CONCURRENCY, sandbox_receipt_delay_seconds=0.2,
                      # Held requests must still be in flight at the kill, not timed out.
                      webhook_timeout_seconds=120)
    assert (await run_cli_async(env, "migrate")).returncode == 0
    made = await run_cli_async(env, "accounts", "create", "--name", "Acme", "--json",
                               "--webhook-url", receiver.url)
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {orjson.loads(made.stdout)['api_key']}"}
    server = TidingsServer(data_dir, env, log_path=tmp_path / "server.log")
    await server.start_async()
    loop = asyncio.get_running_loop()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=headers,
                                     timeout=30.0) as client:
            receiver.hold_after = HOLD_AFTER
            sent = await client.post("/v1/messages/batch", json={
                "from": "Acme", "body": "crash test {n}",
                "recipients": [{"to": f"+1202555{1100 + n:04d}", "variables": {"n": str(n)}}
                               for n in range(MESSAGES)]})
            assert sent.is_success, sent.text

            async def all_answers_recorded() -> bool:
                return len(receiver.held) >= 1 and \
                    await recorded_answers(backend, data_dir) >= receiver.answered

            recorded_in_time = await wait_for(all_answers_recorded, RECORD_WAIT_SECONDS)
            held_at_kill, answered_at_kill = set(receiver.held), receiver.answered
            server.kill()
            killed_at = loop.time()
            receiver.hold_after = None
            receiver.release.set()
            await server.start_async()
            ready_at = loop.time()

            async def everything_arrived() -> bool:
                seen = Counter((m, s) for _, m, s, _ in receiver.arrivals)
                redone = Counter(e for e, *_ in receiver.arrivals)
                return len(seen) == MESSAGES * len(STATUSES) and \
                    all(redone[e] >= 2 for e in held_at_kill)

            arrived = await wait_for(everything_arrived, FINAL_TIMEOUT_SECONDS)
            statuses = await list_all_messages(client)
        await server.stop_async()
    finally:
        if server.running:
            await server.stop_async()

    times = Counter(e for e, *_ in receiver.arrivals)
    duplicates = {e: n - 1 for e, n in times.items() if n > 1}
    second_arrival = {e: [t for ev, _, _, t in receiver.arrivals if ev == e][1]
                      for e in held_at_kill if times[e] > 1}
    lease_out = max(killed_at + lease, ready_at)
    late = {e: round(t - lease_out, 2) for e, t in second_arrival.items()}
    print(f"\nwebhook crash [{backend.name}]: {len(receiver.arrivals)} arrivals, "
          f"{len(times)} distinct events, {sum(duplicates.values())} duplicates; "
          f"{answered_at_kill} answered and {len(held_at_kill)} in flight at the kill "
          f"(all answers recorded before it: {recorded_in_time}); restart took "
          f"{ready_at - killed_at:.1f} s; in-flight ones again after their lease ran out "
          f"(lease {lease} s): max {max(late.values(), default=None)} s")

    assert all(s == "delivered" for s in statuses.values()), Counter(statuses.values())
    assert arrived, f"missing webhooks after the restart\n{server.log_tail()}"
    assert held_at_kill, "no request was in flight at the kill"
    assert len(held_at_kill) <= CONCURRENCY
    # Sent twice: only what was in flight at the kill, never what was answered before it.
    assert set(duplicates) <= held_at_kill, sorted(set(duplicates) - held_at_kill)[:10]
    assert sum(duplicates.values()) <= len(held_at_kill)
    # In flight at the kill: sent again within one lease of the moment it could be.
    assert all(delay <= lease + poll for delay in late.values()), late
