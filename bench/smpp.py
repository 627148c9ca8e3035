"""The SMPP path, Tidings against Kannel 1.4.5 on the same simulator.

    python -m bench.smpp --runs 3

HTTP in, SMPP out, receipts back, callbacks out. Each run of each system gets a
fresh ``tidings smsc-sim`` (receipts ``RECEIPT_DELAY_SECONDS`` after each submit)
and the same messages, each to its own destination: first ``--paced-rate`` a
second for ``--paced-seconds`` (latency while the system keeps up), then
``--total`` flat out (throughput, and how far the callbacks fall behind).

* **Tidings** (sqlite, postgres, postgres-split): batches to
  ``POST /v1/messages/batch``, an SMPP connector of ``BINDS`` binds with a
  window of ``WINDOW``, signed webhooks to a local receiver.
* **Kannel** (``bearerbox`` + ``smsbox``): one ``GET /cgi-bin/sendsms`` per
  message (dlr-mask 3), two SMPP transceiver binds with ``max-pending-submits``
  ``WINDOW``, the delivery-report URL on the same receiver. Installed with
  ``apt-get install kannel`` when missing and running as root; skipped otherwise.

Measured: *submitted/s* at the simulator (accepted submits over the time from
its first to its last), *delivered/s* (messages over the time from the first
HTTP request to the last ``delivered`` callback), *receipt → callback* latency
(the callback's arrival minus the moment the simulator released the receipt:
its ``submitted_at`` plus the receipt delay, matched by destination), the
simulator's duplicates, and CPU seconds per process. Results go to
``bench/results/<timestamp>-smpp.json`` and the table in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.cpu import TICKS, _parent, cpu_seconds
from bench.run import DOC, LAYOUTS, ROOT, database, machine
from bench.server import BIN, Server, free_port, make_server, provision

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
        data = orjson.loads(await request.read())["data"]
        if data["status"] == "delivered":
            self.delivered_at[data["to"].lstrip("+")] = arrived
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


async def send_to_tidings(url: str, api_key: str, phase: Phase, *, batch_size: int) -> int:
    """``phase`` in ``POST /v1/messages/batch`` requests (two at a time when flat out, of
    a tenth of the rate when paced); returns how many messages were accepted."""
    size = batch_size if phase.rate is None else max(1, round(phase.rate / 10))
    last = phase.first + phase.count

    async def post(session: aiohttp.ClientSession, k: int) -> int:
        first = phase.first + k * size
        recipients = [{"to": destination(i), "variables": {"n": str(i)}}
                      for i in range(first, min(first + size, last))]
        payload = {"from": "Bench", "body": "Hello {n}", "recipients": recipients}
        async with session.post(f"{url}/v1/messages/batch", json=payload) as response:
            return int((await response.json())["accepted"]) if response.ok else 0

    headers = {"Authorization": f"Bearer {api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        batches = -(-phase.count // size)
        if phase.rate is None:
            return await send_flat_out(batches, 2, lambda k: post(session, k))
        return await send_at_rate(batches, phase.rate / size, lambda k: post(session, k))


async def send_to_kannel(url: str, dlr_url: str, phase: Phase, *, concurrency: int) -> int:
    """``phase``, one ``GET /cgi-bin/sendsms`` a message (``concurrency`` at a time when
    flat out); returns how many Kannel accepted (202)."""

    async def get(session: aiohttp.ClientSession, k: int) -> int:
        i = phase.first + k
        to = destination(i)
        params = {"username": "bench", "password": "bench", "from": "Bench", "to": to,
                  "text": f"Hello {i}", "dlr-mask": "3",
                  "dlr-url": f"{dlr_url}?to={to.lstrip('+')}&type=%d"}
        async with session.get(f"{url}/cgi-bin/sendsms", params=params) as response:
            await response.read()
            return int(response.status == 202)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        if phase.rate is None:
            return await send_flat_out(phase.count, concurrency, lambda k: get(session, k))
        return await send_at_rate(phase.count, phase.rate, lambda k: get(session, k))


# --- what a run measures ---------------------------------------------------------------


def latencies_ms(phase: Phase, submitted_at: dict[str, float],
                 callbacks: Callbacks) -> dict[str, float]:
    """Receipt -> callback of ``phase``'s messages: p50 and p99."""
    arrivals = callbacks.delivered_at
    found = [(arrivals[to] - submitted_at[to] - RECEIPT_DELAY_SECONDS) * 1000
             for to in phase.destinations if to in arrivals and to in submitted_at]
    return {"p50": statistics.median(found), "p99": statistics.quantiles(found, n=100)[98]}


def summarize(flat: Phase, paced: Phase, started: float, submitted_at: dict[str, float],
              callbacks: Callbacks) -> dict[str, float]:
    """The figures of one run; ``started``: the first HTTP request of ``flat`` (Unix time)."""
    destinations = flat.destinations
    submits = sorted(at for to, at in submitted_at.items() if to in destinations)
    delivered = [at for to, at in callbacks.delivered_at.items() if to in destinations]
    paced_latency, flat_latency = (latencies_ms(phase, submitted_at, callbacks)
                                   for phase in (paced, flat))
    return {
        "submitted_per_s": (len(submits) - 1) / (submits[-1] - submits[0]),
        "delivered_per_s": len(delivered) / (max(delivered) - started),
        "paced_p50_ms": paced_latency["p50"], "paced_p99_ms": paced_latency["p99"],
        "flat_out_p50_ms": flat_latency["p50"], "flat_out_p99_ms": flat_latency["p99"],
        "missing_callbacks": flat.count + paced.count - len(callbacks.delivered_at),
    }


async def measure(send: Callable[[Phase], Awaitable[int]], simulator: Simulator,
                  callbacks: Callbacks, roles: dict[int, str], args: argparse.Namespace,
                  postgres_database: str | None = None) -> dict[str, Any]:
    """Sends the paced messages, then ``args.total`` flat out, each time waiting for the
    callbacks; the run's figures, and the CPU seconds of the flat-out phase for each
    process in ``roles`` and for everything else on the machine."""
    paced = Phase(args.total, round(args.paced_rate * args.paced_seconds), args.paced_rate)
    flat = Phase(0, args.total)
    await callbacks.wait(await send(paced))
    roles = {os.getpid(): "bench (load, receiver)", simulator.pid: "smsc-sim", **roles}
    before, busy_before, started = cpu_seconds(), busy_seconds(), time.time()
    await callbacks.wait(paced.count + await send(flat))
    cpu = cpu_by_role(before, roles, postgres_database)
    elsewhere = max(0.0, busy_seconds() - busy_before - sum(cpu.values()))
    submitted_at = await asyncio.to_thread(simulator.submit_times)
    stats = simulator.stats()
    return {**summarize(flat, paced, started, submitted_at, callbacks),
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


# --- Tidings ---------------------------------------------------------------------------


def tidings_run(layout: str, args: argparse.Namespace) -> dict[str, Any]:
    store, api_processes, webhook_workers = LAYOUTS[layout]
    with tempfile.TemporaryDirectory(prefix="tidings-smpp-") as tmp, \
            database(store, Path(tmp)) as url:
        simulator = Simulator(Path(tmp))
        simulator.start()
        server = make_server(Path(tmp), url, api_processes=api_processes,
                             webhook_workers=webhook_workers)
        try:
            return asyncio.run(_tidings_load(server, simulator, url, args))
        finally:
            server.stop()
            simulator.stop()


def add_smpp_route(server: Server, simulator: Simulator) -> None:
    try:
        server.cli("connectors", "add", "smpp", "--name", "smsc", "--host", "127.0.0.1",
                   "--port", str(simulator.port), "--system-id", SYSTEM_ID,
                   "--binds", str(BINDS), "--window", str(WINDOW))
        server.cli("routes", "add", "--channel", "sms", "--connector", "smsc")
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{' '.join(error.cmd[1:])}: {error.stderr.decode()}") from None


async def _tidings_load(server: Server, simulator: Simulator, database_url: str,
                        args: argparse.Namespace) -> dict[str, Any]:
    async with Callbacks() as callbacks:
        add_smpp_route(server, simulator)
        await asyncio.to_thread(server.start)
        statuses = None if args.webhook_statuses == "all" else args.webhook_statuses
        api_key = provision(server, f"{callbacks.url}/hook", statuses)["api_key"]
        await asyncio.to_thread(simulator.wait_bound, BINDS)
        postgres = database_url.rsplit("/", 1)[1] if "postgresql" in database_url else None
        return await measure(
            lambda phase: send_to_tidings(server.url, api_key, phase,
                                          batch_size=args.batch_size),
            simulator, callbacks, _server_roles(server), args, postgres)


def _server_roles(server: Server) -> dict[int, str]:
    roles = {}
    if server.process:
        roles[server.process.pid] = "tidings serve"
    if server.worker:
        roles[server.worker.pid] = "tidings worker"
    return roles


# --- Kannel ----------------------------------------------------------------------------

KANNEL_CONF = """\
group = core
admin-port = {admin_port}
admin-password = bench
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox_port}
box-allow-ip = "127.0.0.1"
{storage}
log-file = "{dir}/bearerbox.log"
log-level = 3

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms_port}
log-file = "{dir}/smsbox.log"
log-level = 3

group = sendsms-user
username = bench
password = bench
max-messages = 1
"""
KANNEL_SMSC = """
group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {sim_port}
transceiver-mode = true
smsc-username = {system_id}
smsc-password = bench
system-type = ""
max-pending-submits = {window}
"""
IN_MEMORY = "dlr-storage = internal"
# Kannel's own on-disk queue and delivery-report table: what it has queued, and the
# receipts it waits for, outlive a restart.
SPOOLED = "\n".join(['store-type = spool', 'store-location = "{dir}/store"',
                     'dlr-storage = spool', 'dlr-spool = "{dir}/dlr"'])


def kannel_installed() -> bool:
    """Whether ``bearerbox`` is there, after installing Kannel if it is missing and we
    are root (as .ci/run installs its packages)."""
    if shutil.which("bearerbox") or os.geteuid() != 0:
        return bool(shutil.which("bearerbox"))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "kannel"]):
        subprocess.run(command, env=env, check=False, capture_output=True, timeout=600)
    return bool(shutil.which("bearerbox"))


def kannel_version() -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "kannel"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


@dataclass
class Kannel:
    """``bearerbox`` and ``smsbox`` on a kannel.conf written into ``conf_dir``: ``BINDS``
    SMPP transceivers to the simulator, the sendsms HTTP interface, in-memory queues."""

    conf_dir: Path
    sim_port: int
    spooled: bool = False
    sendsms_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}"

    def start(self) -> None:
        conf = self.conf_dir / "kannel.conf"
        conf.write_text(self.config())
        log = open(self.conf_dir / "kannel.out", "ab")  # noqa: SIM115
        for box in ("bearerbox", "smsbox"):
            # -v 4: panics only on the console; its debug output would cost Kannel dearly.
            self.processes[box] = subprocess.Popen([box, "-v", "4", str(conf)], stdout=log,
                                                   stderr=log)
            time.sleep(0.5)  # smsbox connects to a listening bearerbox
        wait_until(self._answers, f"Kannel sendsms on port {self.sendsms_port}")

    def config(self) -> str:
        storage = IN_MEMORY
        if self.spooled:
            for spool in ("store", "dlr"):
                (self.conf_dir / spool).mkdir(exist_ok=True)
            storage = SPOOLED.format(dir=self.conf_dir)
        core = KANNEL_CONF.format(admin_port=free_port(), smsbox_port=free_port(),
                                  sendsms_port=self.sendsms_port, dir=self.conf_dir,
                                  storage=storage)
        smsc = KANNEL_SMSC.format(sim_port=self.sim_port, system_id=SYSTEM_ID, window=WINDOW)
        return core + smsc * BINDS

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            stop_process(process)

    def _answers(self) -> bool:
        exited = [box for box, process in self.processes.items() if process.poll() is not None]
        if exited:
            raise RuntimeError(f"{', '.join(exited)} exited: see {self.conf_dir}/*.log")
        try:
            with urllib.request.urlopen(f"{self.url}/cgi-bin/sendsms", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answers: "Authorization failed" without credentials
        except OSError:
            return False


def kannel_run(args: argparse.Namespace, *, spooled: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kannel-smpp-") as tmp:
        simulator = Simulator(Path(tmp))
        simulator.start()
        kannel = Kannel(Path(tmp), simulator.port, spooled=spooled)
        try:
            kannel.start()
            simulator.wait_bound(BINDS)
            return asyncio.run(_kannel_load(kannel, simulator, args))
        finally:
            kannel.stop()
            simulator.stop()


async def _kannel_load(kannel: Kannel, simulator: Simulator,
                       args: argparse.Namespace) -> dict[str, Any]:
    async with Callbacks() as callbacks:
        return await measure(
            lambda phase: send_to_kannel(kannel.url, f"{callbacks.url}/dlr", phase,
                                         concurrency=args.kannel_concurrency),
            simulator, callbacks, {p.pid: box for box, p in kannel.processes.items()}, args)


# --- the report ------------------------------------------------------------------------

SYSTEMS = [*(f"tidings-{layout}" for layout in LAYOUTS), "kannel", "kannel-spool"]
START, END = "<!-- smpp:start -->", "<!-- smpp:end -->"
ROWS = [
    ("submitted_per_s", "submitted/s at the simulator, flat out"),
    ("delivered_per_s", "delivered/s end to end (to the last callback), flat out"),
    ("paced_p50_ms", "receipt → callback p50 at the paced rate, ms"),
    ("paced_p99_ms", "receipt → callback p99 at the paced rate, ms"),
    ("flat_out_p50_ms", "receipt → callback p50 flat out, ms"),
    ("flat_out_p99_ms", "receipt → callback p99 flat out, ms"),
    ("duplicates", "duplicate submits (simulator)"),
    ("missing_callbacks", "delivered callbacks missing"),
    ("cpu_seconds_elsewhere", "CPU s used by other work during the flat-out phase"),
]
FIGURES = [key for key, _ in ROWS]


def run_system(name: str, args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for number in range(args.runs):
        load_average = os.getloadavg()
        print(f"{name}: run {number + 1}/{args.runs}, load average {load_average}", flush=True)
        result = (kannel_run(args, spooled=name == "kannel-spool")
                  if name.startswith("kannel") else
                  tidings_run(name.removeprefix("tidings-"), args))
        runs.append({**result, "load_average_before": load_average})
        print(json.dumps(runs[-1]), flush=True)
    return {"median": {key: statistics.median(run[key] for run in runs) for key in FIGURES},
            "range": {key: [min(run[key] for run in runs), max(run[key] for run in runs)]
                      for key in FIGURES},
            "runs": runs}


def table(report: dict[str, Any], results_file: str) -> list[str]:
    args, systems = report["args"], report["systems"]
    lines = [f"Measured {report['when']} on {report['machine']['cpu']} "
             f"({report['machine']['cores']} cores); per run {args['paced_rate']:,.0f} msg/s "
             f"for {args['paced_seconds']:,.0f} s, then {args['total']:,} messages flat out; "
             f"median of {args['runs']} runs, the range in brackets; raw runs in "
             f"`bench/results/{results_file}`.", "",
             "| measure | " + " | ".join(report["labels"][name] for name in systems) + " |",
             "|---|" + "---|" * len(systems)]
    for key, label in ROWS:
        cells = [f"{r['median'][key]:,.0f} ({r['range'][key][0]:,.0f}\N{EN DASH}"
                 f"{r['range'][key][1]:,.0f})" for r in systems.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, "", "CPU per message in the flat-out phase, by process (µs, median of "
            "the runs):", "", "| system | per process |", "|---|---|",
            *(f"| {report['labels'][name]} | {cpu_per_message(result['runs'])} |"
              for name, result in systems.items())]


def cpu_per_message(runs: list[dict[str, Any]]) -> str:
    roles = {role for run in runs for role in run["cpu_seconds"]}
    micros = {role: statistics.median(run["cpu_seconds"].get(role, 0.0) / run["flat_out_messages"]
                                      for run in runs) * 1e6 for role in roles}
    return ", ".join(f"{role} {us:,.0f}" for role, us in sorted(micros.items(),
                                                                 key=lambda item: -item[1]))


def write_table(report: dict[str, Any], results_file: str) -> None:
    """Replace the SMPP table in docs/benchmarks.md with this report's medians."""
    text = DOC.read_text()
    if START not in text:
        text += f"\n## SMPP path and Kannel\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    body = "\n".join(table(report, results_file))
    DOC.write_text(head + START + "\n" + body + "\n" + END + rest.split(END, 1)[1])


def labels(kannel: str) -> dict[str, str]:
    names = {f"tidings-{layout}": f"Tidings, {layout}" for layout in LAYOUTS}
    return {**names, "kannel": f"Kannel {kannel}",
            "kannel-spool": f"Kannel {kannel}, spooled"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--total", type=int, default=20_000, help="messages a run")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--paced-rate", type=float, default=200.0,
                        help="messages per second of the latency phase")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--kannel-concurrency", type=int, default=64,
                        help="sendsms requests in flight")
    parser.add_argument("--webhook-statuses", default="final",
                        help="the Tidings account's webhook_statuses: 'final' (one webhook "
                             "per message, as Kannel's dlr-mask 3), 'all' (queued, sent and "
                             "delivered), or a comma-separated list")
    args = parser.parse_args()
    systems = args.systems.split(",")
    if any(s.startswith("kannel") for s in systems) and not kannel_installed():
        print("Kannel skipped: no bearerbox (apt-get install kannel, as root)", flush=True)
        systems = [s for s in systems if not s.startswith("kannel")]
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "args": vars(args), "receipt_delay_seconds": RECEIPT_DELAY_SECONDS,
        "binds": BINDS, "window": WINDOW, "labels": labels(kannel_version()),
        "systems": {name: run_system(name, args) for name in systems}}
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}-smpp.json"
    out.write_text(json.dumps(report, indent=2))
    write_table(report, out.name)
    print(f"wrote {out} and {DOC.relative_to(ROOT)}")
    print(json.dumps({name: r["median"] for name, r in report["systems"].items()}, indent=2))


if __name__ == "__main__":
    main()
