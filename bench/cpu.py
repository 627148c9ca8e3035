"""Where the CPU goes: seconds of CPU per process while one scenario runs.

    python -m bench.cpu --layout postgres-split --scenario batch

Runs one scenario of ``make bench`` against a fresh server in the given layout
and prints the CPU time each process used (read from ``/proc``), per message:
the API processes, the worker, PostgreSQL, the load generator. On a machine
with two cores this tells which part to make cheaper.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench import load
from bench.run import database, wait_delivered
from bench.server import LAYOUTS, Server, make_server, provision

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process: pid -> (command name, user + system CPU seconds)."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        seen[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
    return seen


def roles(server: Server) -> dict[int, str]:
    """Name the server's processes: the API process(es), the worker, the webhook workers."""
    named = {os.getpid(): "load generator"}
    if server.process:
        named[server.process.pid] = "api"
    if server.worker:
        named[server.worker.pid] = "worker"
    for helper in server.helpers:
        named[helper.pid] = "webhook worker"
    return named


def by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
            server: Server) -> dict[str, float]:
    named, used = roles(server), dict[str, float]()
    api_parent = server.process.pid if server.process else -1
    for pid, (name, seconds) in after.items():
        spent = seconds - before.get(pid, (name, 0.0))[1]
        if spent <= 0.05:
            continue
        role = named.get(pid) or ("postgres" if name.startswith("postgres") else
                                  "api" if _parent(pid) == api_parent else name)
        used[role] = used.get(role, 0.0) + spent
    return used


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rindex(")") + 2:].split()[1])


async def scenario(server: Server, api_key: str, name: str, total: int) -> int:
    if name == "single":
        outcome = await load.singles(server.url, api_key, seconds=10, concurrency=32)
    else:
        outcome = await load.batches(server.url, api_key, total=total, batch_size=1_000,
                                     concurrency=2)
    await wait_delivered(server, outcome.accepted, timeout=600)
    return outcome.accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=list(LAYOUTS), default="postgres-split")
    parser.add_argument("--scenario", choices=["single", "batch"], default="batch")
    parser.add_argument("--total", type=int, default=20_000, help="messages in batch mode")
    args = parser.parse_args()
    layout = LAYOUTS[args.layout]
    with tempfile.TemporaryDirectory(prefix="tidings-cpu-") as tmp, \
            database(layout.store, Path(tmp)) as url:
        server = make_server(Path(tmp), url, layout)
        server.start()
        try:
            api_key = provision(server, None)["api_key"]
            before, start = cpu_seconds(), time.perf_counter()
            messages = asyncio.run(scenario(server, api_key, args.scenario, args.total))
            wall, used = time.perf_counter() - start, by_role(before, cpu_seconds(), server)
        finally:
            server.stop()
    print(f"{messages} messages delivered in {wall:.1f} s ({messages / wall:,.0f}/s)")
    for role, seconds in sorted(used.items(), key=lambda item: -item[1]):
        print(f"  {role:<16} {seconds:6.1f} s CPU  {seconds / messages * 1e6:6.0f} us/message")


if __name__ == "__main__":
    main()
