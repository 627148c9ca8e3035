"""Kannel 1.4.5 on the SMPP bench: ``bearerbox`` and ``smsbox`` against the same
simulator as Tidings, in memory or durable (see ``bench/smpp.py``).

Durable: Kannel's message store on its spool (``store-type = spool``) and its
delivery-report table in a Redis of its own (``dlr-storage = redis``), that Redis
writing every change to its append-only file before it answers (``appendfsync
always``), as Tidings' SQLite commits with ``synchronous=FULL``. Kannel's own
``dlr-storage = spool`` lost hundreds of callbacks a run (the 2026-12-06 table):
a bench that loses callbacks cannot be compared on speed."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import Spec, Tally, generate
from bench.server import free_port
from bench.smpp_harness import (
    BINDS,
    SYSTEM_ID,
    WINDOW,
    Callbacks,
    Phase,
    Simulator,
    measure,
    stop_process,
    wait_until,
)

# --- Kannel ----------------------------------------------------------------------------

def send_to_kannel(url: str, dlr_url: str, phase: Phase, *, concurrency: int,
                   generator: str = "kannel") -> Awaitable[Tally]:
    """``phase``, one ``GET /cgi-bin/sendsms`` a message, ``concurrency`` in flight, from
    a generator process (``kannel``: the lean one; ``kannel-aiohttp``: the old one)."""
    return generate(Spec(generator, url, phase.first, phase.count, phase.rate,
                         concurrency=concurrency, dlr_url=dlr_url))


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
# What Kannel has queued, and the receipts it waits for, outlive a restart: its message
# store on its spool, its delivery-report table in Redis.
DURABLE = """store-type = spool
store-location = "{dir}/store"
dlr-storage = redis"""
REDIS_GROUPS = """
group = redis-connection
id = dlr
host = 127.0.0.1
port = {redis_port}
database = 0
max-connections = 2

group = dlr-db
id = dlr
table = dlr
ttl = 604800
field-smsc = smsc
field-timestamp = ts
field-destination = destination
field-source = source
field-service = service
field-url = url
field-mask = mask
field-status = status
field-boxc-id = boxc
"""


def redis_command(port: int, data_dir: Path) -> list[str]:
    """A Redis of the run's own, on loopback, that appends every write to its file and
    syncs it before answering; no snapshots."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--logfile", str(data_dir / "redis.log")]


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def kannel_installed() -> bool:
    """Whether ``bearerbox`` is there, after installing Kannel if it is missing and we
    are root (as .ci/run installs its packages)."""
    if shutil.which("bearerbox") or os.geteuid() != 0:
        return bool(shutil.which("bearerbox"))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "kannel"]):
        subprocess.run(command, env=env, check=False, capture_output=True, timeout=600)
    return bool(shutil.which("bearerbox"))


def redis_installed() -> bool:
    """Whether ``redis-server`` is there (durable Kannel's delivery reports), after
    installing it if it is missing and we are root."""
    if shutil.which("redis-server") or os.geteuid() != 0:
        return bool(shutil.which("redis-server"))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], env=env, check=False,
                   capture_output=True, timeout=600)
    return bool(shutil.which("redis-server"))


def kannel_version() -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "kannel"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


@dataclass
class Kannel:
    """``bearerbox`` and ``smsbox`` on a kannel.conf written into ``conf_dir``: ``BINDS``
    SMPP transceivers to the simulator, the sendsms HTTP interface; in-memory queues, or
    durable ones (the spool, and a Redis of its own for the delivery reports)."""

    conf_dir: Path
    sim_port: int
    durable: bool = False
    sendsms_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}"

    def start(self) -> None:
        conf = self.conf_dir / "kannel.conf"
        conf.write_text(self.config())
        log = open(self.conf_dir / "kannel.out", "ab")  # noqa: SIM115
        if self.durable:
            self.processes["redis-server"] = subprocess.Popen(
                redis_command(self.redis_port, self.conf_dir), stdout=log, stderr=log)
            wait_until(lambda: redis_answers(self.redis_port), f"redis on {self.redis_port}")
        for box in ("bearerbox", "smsbox"):
            # -v 4: panics only on the console; its debug output would cost Kannel dearly.
            self.processes[box] = subprocess.Popen([box, "-v", "4", str(conf)], stdout=log,
                                                   stderr=log)
            time.sleep(0.5)  # smsbox connects to a listening bearerbox
        wait_until(self._answers, f"Kannel sendsms on port {self.sendsms_port}")

    def config(self) -> str:
        storage = IN_MEMORY
        if self.durable:
            (self.conf_dir / "store").mkdir(exist_ok=True)
            storage = DURABLE.format(dir=self.conf_dir)
        core = KANNEL_CONF.format(admin_port=free_port(), smsbox_port=free_port(),
                                  sendsms_port=self.sendsms_port, dir=self.conf_dir,
                                  storage=storage)
        binds, window = self.binds
        smsc = KANNEL_SMSC.format(sim_port=self.sim_port, system_id=SYSTEM_ID, window=window)
        redis = REDIS_GROUPS.format(redis_port=self.redis_port)
        return core + smsc * binds + (redis if self.durable else "")

    @property
    def binds(self) -> tuple[int, int]:
        """SMPP binds, and the submits in flight on each: Tidings' ``BINDS`` and
        ``WINDOW``; durable, the same submits in flight on one bind. Kannel looks a
        receipt up the moment it reads it, and with its delivery-report table in Redis
        the report of a submit answered on one bind may not be stored yet when its
        receipt comes in on the other: "got DLR but could not find message", the
        callback lost (46 to 244 of 1,200 a run with two binds, none with one). In
        memory the same happens only when the machine is overloaded (2, 7 and 17 of 2,400
        in three runs with other work using most of both cores): kept at two binds, as in the
        runs before, its losses shown in the table."""
        return (1, BINDS * WINDOW) if self.durable else (BINDS, WINDOW)

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


def kannel_run(args: argparse.Namespace, *, durable: bool,
               generator: str = "kannel") -> dict[str, Any]:
    """One run of Kannel; ``generator``: ``kannel`` (lean) or ``kannel-aiohttp``."""
    with tempfile.TemporaryDirectory(prefix="kannel-smpp-") as tmp:
        simulator = Simulator(Path(tmp))
        simulator.start()
        kannel = Kannel(Path(tmp), simulator.port, durable=durable)
        try:
            kannel.start()
            simulator.wait_bound(kannel.binds[0])
            return asyncio.run(_kannel_load(kannel, simulator, args, generator))
        finally:
            kannel.stop()
            simulator.stop()


async def _kannel_load(kannel: Kannel, simulator: Simulator, args: argparse.Namespace,
                       generator: str) -> dict[str, Any]:
    async with Callbacks() as callbacks:
        return await measure(
            lambda phase: send_to_kannel(kannel.url, f"{callbacks.url}/dlr", phase,
                                         concurrency=args.concurrency, generator=generator),
            simulator, callbacks, {p.pid: box for box, p in kannel.processes.items()}, args)
