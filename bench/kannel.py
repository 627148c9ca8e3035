"""Kannel 1.4.5 on the SMPP bench: ``bearerbox`` and ``smsbox`` against the same
simulator as Tidings, in memory or with its spool (see ``bench/smpp.py``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.server import free_port
from bench.smpp_harness import (
    BINDS,
    SYSTEM_ID,
    WINDOW,
    Callbacks,
    Phase,
    Simulator,
    destination,
    measure,
    send_at_rate,
    send_flat_out,
    stop_process,
    wait_until,
)

# --- Kannel ----------------------------------------------------------------------------

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
