"""The durability proof: a real ``tidings serve`` is SIGKILLed under load and restarted.

A client sends a few hundred messages (singles and small batches) while the server is
killed three times at random moments. Afterwards every message the client saw accepted
must be delivered, submitted to the carrier once (one ledger row, one applied ``sent``),
announced by queued, sent and delivered webhooks (at least once each), and the audit
trail must still verify.

``TIDINGS_CRASH_SEED`` replays a run (the seed is printed in the summary).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from sqlalchemy import delete, select

from tests.functional.backends import Backend, query_main, sqlite_read_only
from tests.functional.server import TidingsServer, post_endpoint, run_cli_async, tidings_env
from tests.pg import role_settings
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.jobs.outbox import Job, claim, complete, enqueue_rows, extend, job_row
from tidings.jobs.workers import Worker, WorkerPool
from tidings.runtime import Runtime, close_runtime, open_runtime
from tidings.storage.db import SYSTEM

MESSAGES = 360  # recipients the client sends in all (while the server is up)
KILLS = 3
SENDERS = 4  # concurrent client loops
FINAL_TIMEOUT_SECONDS = 120.0
EXPECTED_WEBHOOKS = ("queued", "sent", "delivered")
CLIENT_TIMEOUT = httpx.Timeout(5.0, connect=1.0)


# --------------------------------------------------------------------------- webhooks


@dataclass
class Receiver:
    url: str = ""
    hits: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0  # which start of the server is running (set by the test)

    def duplicates(self) -> tuple[int, int]:
        """Repeated event ids: (all, those repeated by the same server process)."""
        by_event: dict[str, list[int]] = defaultdict(list)
        for hit in self.hits:
            by_event[hit["event_id"]].append(hit["generation"])
        total = sum(len(g) - 1 for g in by_event.values())
        same = sum(len(g) - len(set(g)) for g in by_event.values())
        return total, same

    def by_message(self) -> dict[str, dict[int, set[str]]]:
        """message_id -> sequence -> statuses seen with that sequence."""
        seen: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        for hit in self.hits:
            seen[hit["message_id"]][hit["sequence"]].add(hit["status"])
        return seen

    def statuses(self, message_id: str, seen: dict[str, dict[int, set[str]]]) -> set[str]:
        return {s for statuses in seen.get(message_id, {}).values() for s in statuses}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook endpoint on loopback that records every request, always answering 200."""
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        rec.hits.append({"event_id": body["id"], "type": body["type"],
                         "message_id": body["data"]["message_id"],
                         "sequence": body["sequence"], "status": body["data"]["status"],
                         "generation": rec.generation})
        return web.Response(text="ok")

    async with post_endpoint(handle) as rec.url:
        yield rec


# --------------------------------------------------------------------------- traffic


@dataclass
class Traffic:
    """What the client saw: only a 2xx answer counts as accepted."""

    accepted: dict[str, str] = field(default_factory=dict)  # message id -> "single"/"batch"
    attempted: int = 0  # recipients in requests that reached (or may have reached) the server
    requests: int = 0
    ok_requests: int = 0
    refused: int = 0  # connection refused: the server was down, nothing was sent
    unknown: int = 0  # requests cut off by a kill: the outcome is unknown to the client
    unknown_recipients: int = 0
    bad_answers: list[str] = field(default_factory=list)  # non-2xx answers (none expected)


NUMBERS = [f"+1202555{n:04d}" for n in range(110, 200)]  # clear of the magic 0100-0105


async def send_loop(client: httpx.AsyncClient, traffic: Traffic, rng: random.Random,
                    sender_no: int) -> None:
    counter = 0
    while traffic.attempted < MESSAGES:
        counter += 1
        size = 1 if rng.random() < 0.5 else rng.randint(2, 6)
        size = max(1, min(size, MESSAGES - traffic.attempted))
        tag = f"s{sender_no}-{counter}"
        payload: dict[str, Any]
        if size == 1:
            path, payload = "/v1/messages", {"to": rng.choice(NUMBERS), "from": "Acme",
                                             "body": f"crash test {tag}"}
        else:
            path, payload = "/v1/messages/batch", {
                "from": "Acme", "body": "crash test {tag} #{n}",
                "recipients": [{"to": rng.choice(NUMBERS), "variables": {"tag": tag,
                                                                         "n": str(i)}}
                               for i in range(size)]}
        try:
            response = await client.post(path, json=payload)
        except httpx.ConnectError:
            traffic.refused += 1  # nothing reached the server
            await asyncio.sleep(0.05)
            continue
        except httpx.TransportError:  # cut off mid-request: may or may not have committed
            traffic.requests += 1
            traffic.attempted += size
            traffic.unknown += 1
            traffic.unknown_recipients += size
            await asyncio.sleep(0.05)
            continue
        traffic.requests += 1
        traffic.attempted += size
        if not response.is_success:
            traffic.bad_answers.append(f"{path} {response.status_code} {response.text[:300]}")
            continue
        traffic.ok_requests += 1
        body = response.json()
        if size == 1:
            traffic.accepted[body["id"]] = "single"
        else:
            assert body["accepted"] == size, body
            for result in body["results"]:
                traffic.accepted[result["message_id"]] = "batch"


async def chaos(server: TidingsServer, traffic: Traffic, rng: random.Random,
                kills: list[int], receiver: Receiver) -> None:
    """Kill the server once in each third of the traffic, at a random point, and restart."""
    low, high = MESSAGES // 10, MESSAGES * 9 // 10
    step = (high - low) // KILLS
    thresholds = [rng.randrange(low + i * step, low + (i + 1) * step) for i in range(KILLS)]
    for threshold in thresholds:
        while traffic.attempted < threshold:
            await asyncio.sleep(0.002)
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        kills.append(traffic.attempted)
        server.kill()
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        receiver.generation += 1
        await server.start_async()


async def list_all_messages(client: httpx.AsyncClient) -> dict[str, str]:
    """Every message of the account: id -> status (through the API, paged)."""
    statuses: dict[str, str] = {}
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/messages", params=params)
        response.raise_for_status()
        page = response.json()
        statuses.update({m["id"]: m["status"] for m in page["data"]})
        cursor = page["next_cursor"]
        if not cursor:
            return statuses


def missing_webhooks(traffic: Traffic, receiver: Receiver) -> dict[str, set[str]]:
    seen = receiver.by_message()
    missing = {}
    for message_id in traffic.accepted:
        lacking = set(EXPECTED_WEBHOOKS) - receiver.statuses(message_id, seen)
        if lacking:
            missing[message_id] = lacking
    return missing


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_no_message_lost_or_duplicated_across_sigkills(
        tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    seed = int(os.environ.get("TIDINGS_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    env = tidings_env(data_dir, job_lease_seconds=2, sandbox_receipt_delay_seconds=0.2,
                      database_url=backend.database_url, log_level="INFO",
                      **role_settings(backend.database_url))

    assert (await run_cli_async(env, "migrate")).returncode == 0
    made = await run_cli_async(env, "accounts", "create", "--name", "Acme", "--json",
                               "--webhook-url", receiver.url)
    assert made.returncode == 0, made.stderr
    account = orjson.loads(made.stdout)
    headers = {"Authorization": f"Bearer {account['api_key']}"}

    server = TidingsServer(data_dir, env, log_path=tmp_path / "server.log")
    await server.start_async()
    traffic, kills = Traffic(), list[int]()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=headers,
                                     timeout=CLIENT_TIMEOUT) as client:
            async with asyncio.TaskGroup() as group:  # one failing cancels the others
                group.create_task(chaos(server, traffic, rng, kills, receiver))
                for n in range(SENDERS):
                    group.create_task(send_loop(client, traffic, random.Random(rng.random()),
                                                n))
            assert len(kills) == KILLS
            assert not traffic.bad_answers, traffic.bad_answers[:5]

            # Bounded wait: every message final, every accepted one's webhooks received.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + FINAL_TIMEOUT_SECONDS
            while True:
                statuses = await list_all_messages(client)
                pending = {m: s for m, s in statuses.items() if s != "delivered"}
                lost = set(traffic.accepted) - set(statuses)
                missing = missing_webhooks(traffic, receiver)
                if (not pending and not missing) or lost or loop.time() > deadline:
                    break
                await asyncio.sleep(0.25)
        exit_code = await server.stop_async()
    finally:
        if server.running:
            await server.stop_async()

    # The pipeline's own records, read directly once the server is down.
    message_rows = await query_main(backend, data_dir,
                                    "SELECT id, status FROM messages WHERE direction = "
                                    "'outbound'")
    in_db = {row[0]: row[1] for row in message_rows}
    applied = "applied = 1" if backend.name == "sqlite" else "applied"
    twice_applied = await query_main(
        backend, data_dir,
        f"SELECT message_id, status, COUNT(*) FROM message_events WHERE {applied} "
        "GROUP BY message_id, status HAVING COUNT(*) > 1")
    redundant = await query_main(
        backend, data_dir,
        f"SELECT status, COUNT(*) FROM message_events WHERE NOT ({applied}) GROUP BY status")
    ledger = sqlite_read_only(data_dir / "sandbox-carrier.db",
                        "SELECT message_id, attempts FROM sandbox_submissions")
    ledger_ids = [row[0] for row in ledger]
    verify = await run_cli_async(env, "audit", "verify")

    accepted = set(traffic.accepted)
    error_lines = server.log_text().count('"level": "error"')
    distinct_events = {hit["event_id"] for hit in receiver.hits}
    duplicates, same_process_duplicates = receiver.duplicates()
    print(
        f"\ncrash test [{backend.name}] seed={seed}\n"
        f"  client: {traffic.attempted} recipients in {traffic.requests} requests "
        f"({traffic.ok_requests} answered 2xx, {traffic.unknown} cut off by a kill with "
        f"{traffic.unknown_recipients} recipients, {traffic.refused} refused while down)\n"
        f"  accepted: {len(accepted)} messages; in database: {len(in_db)} "
        f"({len(set(in_db) - accepted)} created but never confirmed to the client)\n"
        f"  kills: {len(kills)} at recipients {kills}; server starts: {server.starts}; "
        f"clean stop exit code: {exit_code}\n"
        f"  final: {dict(Counter(in_db.values()))}\n"
        f"  carrier ledger: {len(ledger)} rows, "
        f"{sum(a - 1 for _, a in ledger)} resubmissions "
        f"({sum(1 for _, a in ledger if a > 1)} messages submitted more than once)\n"
        f"  redundant (not applied) events: {dict(redundant)}\n"
        f"  webhooks: {len(receiver.hits)} received, {len(distinct_events)} distinct events, "
        f"{duplicates} duplicates ({same_process_duplicates} repeated by the same process)\n"
        f"  server log: {error_lines} error lines")

    # (a) nothing the client saw accepted is lost, and everything ends delivered.
    assert not accepted - set(in_db), f"lost: {sorted(accepted - set(in_db))[:10]}"
    undelivered = {m: s for m, s in in_db.items() if s != "delivered"}
    assert not undelivered, f"not delivered in {FINAL_TIMEOUT_SECONDS}s: " \
                            f"{list(undelivered.items())[:10]}\n{server.log_tail()}"

    # (b) one carrier submission per message, none for a message we do not have.
    assert len(ledger_ids) == len(set(ledger_ids))
    assert accepted <= set(ledger_ids), f"never submitted: {sorted(accepted - set(ledger_ids))}"
    assert set(ledger_ids) <= set(in_db), f"unknown to us: {set(ledger_ids) - set(in_db)}"
    assert set(in_db) <= set(ledger_ids)
    assert not twice_applied, f"a status applied twice: {twice_applied[:10]}"

    # (c) at least once: queued, sent and delivered webhooks for every accepted message,
    # each (message, sequence) always carrying one status.
    assert not missing_webhooks(traffic, receiver)
    seen = receiver.by_message()
    inconsistent = {(m, seq): s for m, by_seq in seen.items() for seq, s in by_seq.items()
                    if len(s) > 1}
    assert not inconsistent, inconsistent
    for message_id in accepted:
        assert {min(seen[message_id][seq]) for seq in seen[message_id]} == \
            set(EXPECTED_WEBHOOKS), (message_id, seen[message_id])
    # One event id per (message, sequence): a redelivery repeats the id, never a new one.
    ids_per_event: dict[tuple[str, int], set[str]] = defaultdict(set)
    for hit in receiver.hits:
        ids_per_event[(hit["message_id"], hit["sequence"])].add(hit["event_id"])
    assert all(len(ids) == 1 for ids in ids_per_event.values())

    # (d) the audit trail survived the kills.
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip().endswith("ok"), verify.stdout


# --------------------------------------------------------------------------- leases
# In-process checks of what the crash test relies on: a lease protects a batch while its
# worker lives (no second run of it by another loop), and a clean stop lets it finish.

TEST_JOB = "test.lease"


async def _runtime(tmp_path: Path, database_url: str, **settings: Any) -> Runtime:
    rt = await open_runtime(Settings(data_dir=tmp_path / "data", database_url=database_url,
                                     **role_settings(database_url), **settings),
                            clock=FakeClock(), start_background=False)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(delete(Job).where(Job.kind == TEST_JOB))
    return rt


async def _enqueue(rt: Runtime, count: int) -> None:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await enqueue_rows(session, [job_row(tenant=SYSTEM, kind=TEST_JOB, ref_id=f"r{i}",
                                             now=now) for i in range(count)])


async def _left(rt: Runtime) -> list[Job]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(Job).where(Job.kind == TEST_JOB))).all())


async def _eventually(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def test_a_live_worker_renews_the_lease_of_a_slow_batch(
        tmp_path: Path, database_url: str) -> None:
    rt = await _runtime(tmp_path, database_url, job_lease_seconds=0.3)
    clock = rt.clock
    assert isinstance(clock, FakeClock)
    started, release, runs = asyncio.Event(), asyncio.Event(), []

    async def slow(rt: Runtime, jobs: Sequence[Job]) -> None:
        runs.append([j.id for j in jobs])
        started.set()
        await release.wait()
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await complete(session, [j.id for j in jobs])

    pool = WorkerPool(rt, [Worker(TEST_JOB, slow, batch_size=10)])
    try:
        await _enqueue(rt, 3)
        batch = asyncio.create_task(pool.run_once(TEST_JOB))
        await started.wait()
        clock.advance(60)  # far past the first lease: only a renewal keeps the jobs held

        async def renewed() -> bool:
            jobs = await _left(rt)
            return all(j.locked_until is not None and j.locked_until > clock.now()
                       for j in jobs)

        await _eventually(renewed, "the lease renewed past the clock")
        assert await claim(rt.db, kind=TEST_JOB, limit=10, now=clock.now(),
                           lease=timedelta(seconds=0.3)) == []
        release.set()
        assert await batch == 3
        assert len(runs) == 1
        assert await _left(rt) == []
    finally:
        release.set()
        await close_runtime(rt)


async def test_a_dead_worker_lease_runs_out_and_the_jobs_run_again(
        tmp_path: Path, database_url: str) -> None:
    rt = await _runtime(tmp_path, database_url, job_lease_seconds=0.3)
    clock = rt.clock
    assert isinstance(clock, FakeClock)
    try:
        await _enqueue(rt, 2)
        first = await claim(rt.db, kind=TEST_JOB, limit=10, now=clock.now(),
                            lease=timedelta(seconds=0.3))
        assert len(first) == 2  # claimed, then "the process dies": nobody renews
        assert await claim(rt.db, kind=TEST_JOB, limit=10, now=clock.now(),
                           lease=timedelta(seconds=0.3)) == []
        clock.advance(1)
        again = await claim(rt.db, kind=TEST_JOB, limit=10, now=clock.now(),
                            lease=timedelta(seconds=0.3))
        assert sorted(j.id for j in again) == sorted(j.id for j in first)
        # The dead worker's lease is gone: renewing it changes nothing.
        assert await extend(rt.db, first, leased_until=clock.now() - timedelta(seconds=0.7),
                            until=clock.now() + timedelta(hours=1)) == 0
    finally:
        await close_runtime(rt)


async def test_stop_lets_the_batch_in_hand_finish(tmp_path: Path, database_url: str) -> None:
    rt = await _runtime(tmp_path, database_url)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    async def handler(rt: Runtime, jobs: Sequence[Job]) -> None:
        started.set()
        await release.wait()
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await complete(session, [j.id for j in jobs])
        finished.extend(j.id for j in jobs)

    pool = WorkerPool(rt, [Worker(TEST_JOB, handler, batch_size=10)])
    try:
        await _enqueue(rt, 2)
        pool.start()
        await started.wait()
        stopping = asyncio.create_task(pool.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()  # waiting for the batch, not cancelling it
        release.set()
        await stopping
        assert len(finished) == 2
        assert await _left(rt) == []
    finally:
        release.set()
        await close_runtime(rt)
