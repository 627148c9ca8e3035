"""What both sides of the SMPP bench share: the simulator, the callback receiver,
the pacing of the load, and what a run measures (see ``bench/smpp.py``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web

from bench.cpu import TICKS, _parent, cpu_seconds
from bench.server import BIN, free_port

RECEIPT_DELAY_SECONDS = 0.05
BINDS, WINDOW = 2, 100  # per system: SMPP binds, and submits in flight on each
SYSTEM_ID = "bench"
FIRST_NUMBER = 12022000000  # +1 202 200 0000..: valid, one per message, never a magic one


def destination(i: int) -> str:
    return f"+{FIRST_NUMBER + i}"


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


# --- the simulator -------------------------------------------------------------------


@dataclass
class Simulator:
    """``tidings smsc-sim`` in its own process, with its control API."""

    log_dir: Path
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_dir / "smsc-sim.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "tidings"), "smsc-sim", "--port", str(self.port),
             "--control-port", str(self.control_port),
             "--receipt-delay", str(RECEIPT_DELAY_SECONDS)], stdout=log, stderr=log)
        wait_until(self._answers, f"smsc-sim on port {self.control_port}")

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else -1

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = get_json(f"http://127.0.0.1:{self.control_port}/stats")
        return stats

    def submit_times(self) -> dict[str, float]:
        """Destination digits -> when the simulator accepted its submit (Unix time)."""
        submits = get_json(f"http://127.0.0.1:{self.control_port}/submits")
        return {s["destination"]: datetime.fromisoformat(s["submitted_at"]).timestamp()
                for s in submits}

    def wait_bound(self, binds: int) -> None:
        wait_until(lambda: self.stats()["bound"] >= binds, f"{binds} binds to smsc-sim")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)

    def _answers(self) -> bool:
        try:
            self.stats()
        except OSError:
            return False
        return True


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.2)


# --- callbacks: Tidings' webhooks and Kannel's delivery reports ----------------------


@dataclass
class Callbacks:
    """Receives both kinds of callback; keeps when each destination's ``delivered`` one
    arrived (Unix time)."""

    url: str = ""
    delivered_at: dict[str, float] = field(default_factory=dict)
    # Tidings only: when the receipt was stored (the delivered event's created_at)
    stored_at: dict[str, float] = field(default_factory=dict)
    received: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._webhook)
        app.router.add_get("/dlr", self._delivery_report)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Callbacks:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait(self, total: int, *, idle_timeout: float = 30) -> None:
        """Until ``total`` messages are delivered, or nothing arrives for ``idle_timeout``."""
        seen, idle_since = -1, time.monotonic()
        while len(self.delivered_at) < total and time.monotonic() - idle_since < idle_timeout:
            if self.received != seen:
                seen, idle_since = self.received, time.monotonic()
            await asyncio.sleep(0.1)

    async def _webhook(self, request: web.Request) -> web.Response:
        arrived = time.time()
        self.received += 1
        event = orjson.loads(await request.read())
        data = event["data"]
        if data["status"] == "delivered":
            to = data["to"].lstrip("+")
            self.delivered_at[to] = arrived
            self.stored_at[to] = datetime.fromisoformat(event["created_at"]).timestamp()
        return web.Response(text="ok")

    async def _delivery_report(self, request: web.Request) -> web.Response:
        arrived = time.time()
        self.received += 1
        if request.query.get("type") == "1":  # Kannel's %d: 1 is delivered to the phone
            self.delivered_at[request.query["to"].lstrip("+")] = arrived
        return web.Response(text="ok")


# --- load ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """Messages ``first`` .. ``first + count - 1``, at ``rate`` per second (None: flat out)."""

    first: int
    count: int
    rate: float | None = None

    @property
    def destinations(self) -> set[str]:
        return {destination(i).lstrip("+") for i in range(self.first, self.first + self.count)}


OneSend = Callable[[int], Coroutine[Any, Any, int]]  # sends request k, returns messages taken


async def send_at_rate(count: int, rate: float, one: OneSend) -> int:
    """Starts ``one(k)`` for k in 0..count-1, ``rate`` a second; adds up what they return."""
    start, tasks = time.perf_counter(), []
    for k in range(count):
        await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(k)))
    return sum(await asyncio.gather(*tasks))


async def send_flat_out(count: int, concurrency: int, one: OneSend) -> int:
    """``one(k)`` for k in 0..count-1, ``concurrency`` at a time; adds up what they return."""
    ks, done = iter(range(count)), 0

    async def client() -> None:
        nonlocal done
        for k in ks:
            taken = await one(k)  # not `done += await ...`: that reads done before the await
            done += taken

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done


# --- what a run measures ---------------------------------------------------------------


def latencies_ms(phase: Phase, submitted_at: dict[str, float],
                 callbacks: Callbacks) -> dict[str, float]:
    """Receipt -> callback of ``phase``'s messages: p50 and p99 (NaN with no callback)."""
    arrivals = callbacks.delivered_at
    found = [(arrivals[to] - submitted_at[to] - RECEIPT_DELAY_SECONDS) * 1000
             for to in phase.destinations if to in arrivals and to in submitted_at]
    if len(found) < 2:
        return {"p50": float("nan"), "p99": float("nan")}
    return {"p50": statistics.median(found), "p99": statistics.quantiles(found, n=100)[98]}


def stages_ms(phase: Phase, submitted_at: dict[str, float],
              callbacks: Callbacks) -> dict[str, float]:
    """Tidings' receipt -> callback in two: receipt -> stored (reading the deliver_sm,
    applying it) and stored -> callback (the webhook's queue and POST); p50 of each.
    NaN for Kannel, whose callbacks do not say when it took the receipt."""
    stored, arrivals = callbacks.stored_at, callbacks.delivered_at
    pairs = [(stored[to] - submitted_at[to] - RECEIPT_DELAY_SECONDS, arrivals[to] - stored[to])
             for to in phase.destinations if to in stored and to in submitted_at]
    if len(pairs) < 2:
        return {"stored": float("nan"), "posted": float("nan")}
    return {"stored": statistics.median(p[0] for p in pairs) * 1000,
            "posted": statistics.median(p[1] for p in pairs) * 1000}


def summarize(flat: Phase, paced: Phase, started: float, submitted_at: dict[str, float],
              callbacks: Callbacks) -> dict[str, float]:
    """The figures of one run; ``started``: the first HTTP request of ``flat`` (Unix time)."""
    destinations = flat.destinations
    submits = sorted(at for to, at in submitted_at.items() if to in destinations)
    delivered = [at for to, at in callbacks.delivered_at.items() if to in destinations]
    paced_latency, flat_latency = (latencies_ms(phase, submitted_at, callbacks)
                                   for phase in (paced, flat))
    flat_stages = stages_ms(flat, submitted_at, callbacks)
    return {
        "submitted_per_s": (len(submits) - 1) / (submits[-1] - submits[0]),
        "delivered_per_s": len(delivered) / (max(delivered) - started) if delivered else 0.0,
        "paced_p50_ms": paced_latency["p50"], "paced_p99_ms": paced_latency["p99"],
        "flat_out_p50_ms": flat_latency["p50"], "flat_out_p99_ms": flat_latency["p99"],
        "flat_out_stored_p50_ms": flat_stages["stored"],
        "flat_out_posted_p50_ms": flat_stages["posted"],
        "missing_callbacks": flat.count + paced.count - len(callbacks.delivered_at),
    }


class Load(Protocol):
    """What a load generator reports (``bench.loadgen.Tally``)."""

    accepted: int
    seconds: float
    cpu_seconds: float
    statuses: dict[int, int]
    started_at: float
    setup_cpu_seconds: float


async def measure(send: Callable[[Phase], Awaitable[Load]], simulator: Simulator,
                  callbacks: Callbacks, roles: dict[int, str], args: argparse.Namespace,
                  postgres_database: str | None = None) -> dict[str, Any]:
    """Sends the paced messages, then ``args.total`` flat out, each time waiting for the
    callbacks; the run's figures, and the CPU seconds of the flat-out phase for each
    process in ``roles``, the load generator and everything else on the machine."""
    paced = Phase(args.total, round(args.paced_rate * args.paced_seconds), args.paced_rate)
    flat = Phase(0, args.total)
    await callbacks.wait((await send(paced)).accepted)
    roles = {os.getpid(): "bench (receiver)", simulator.pid: "smsc-sim", **roles}
    before, busy_before, started = cpu_seconds(), busy_seconds(), time.time()
    load = await send(flat)
    await callbacks.wait(paced.count + load.accepted)
    cpu = cpu_by_role(before, roles, postgres_database)
    # Its process has ended: its own count, the driving apart from its start-up.
    cpu["load generator"] = round(load.cpu_seconds, 2)
    cpu["load generator, start and encoding"] = round(load.setup_cpu_seconds, 2)
    elsewhere = max(0.0, busy_seconds() - busy_before - sum(cpu.values()))
    submitted_at = await asyncio.to_thread(simulator.submit_times)
    stats = simulator.stats()
    # delivered/s from the first request: the generator's start is not the system's time
    return {**summarize(flat, paced, load.started_at, submitted_at, callbacks),
            "http_accepted_per_s": load.accepted / load.seconds if load.seconds else 0.0,
            "http_accepted": load.accepted, "http_statuses": load.statuses,
            "generator_us_per_message": load.cpu_seconds / flat.count * 1e6,
            "duplicates": stats["duplicates"], "submits_accepted": stats["submits_accepted"],
            "callbacks": callbacks.received, "flat_out_messages": flat.count,
            "flat_out_seconds": round(time.time() - started, 1),
            "cpu_seconds": cpu, "cpu_seconds_elsewhere": round(elsewhere, 1)}


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, from /proc/stat): the
    difference to ``cpu_by_role`` is what other work took during a run."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


def cpu_by_role(before: dict[int, tuple[str, float]], roles: dict[int, str],
                postgres_database: str | None) -> dict[str, float]:
    """CPU seconds since ``before`` of the named processes, their children, and the
    PostgreSQL backends of ``postgres_database``; other processes are not counted."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in cpu_seconds().items():
        role = roles.get(pid) or roles.get(_parent(pid)) or _postgres_role(pid, name,
                                                                          postgres_database)
        spent = seconds - before.get(pid, (name, 0.0))[1]
        if role and spent > 0.01:
            used[role] = round(used.get(role, 0.0) + spent, 2)
    return used


def _postgres_role(pid: int, name: str, database_name: str | None) -> str | None:
    if not (database_name and name.startswith("postgres")):
        return None
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    return "postgres" if f" {database_name} " in title else None
