"""The server's work per single send, counted rather than timed, so builds compare on a
busy machine.

    # instructions per send in the API process (callgrind; the way docs/benchmarks.md does it)
    .venv/bin/python -m bench.cpu_per_send --api-only --concurrency 1 --sends 300 \
        --warmup 100 --repeat 3 --callgrind /tmp/cg/this.out
    /tmp/before/.venv/bin/python -m bench.cpu_per_send ...   # another build: its venv, this bench
    PYTHONPATH=/tmp/export/src .venv/bin/python -m bench.cpu_per_send ...  # an exported tree
    # which functions: cProfile over the window, then the two builds compared
    .venv/bin/python -m bench.cpu_per_send --api-only --concurrency 1 --sends 1000 \
        --repeat 1 --profile /tmp/after.prof
    .venv/bin/python -m bench.cpu_per_send --compare /tmp/before.prof /tmp/after.prof --sends 1000

Starts ``tidings serve`` on SQLite as ``bench.run`` does, with the ``tidings`` of the Python
that runs this (``--api-only``: without the workers), warms it up, then sends a fixed number of
single ``POST /v1/messages`` (the same payloads, the same concurrency each time) and, with the
workers, waits until all of them are delivered. Over that window it reads the server's CPU
seconds from /proc and its instructions from ``perf stat`` where the machine has hardware
counters or, with ``--callgrind``, from callgrind (the server then runs under valgrind, its
instrumentation on only for the window: use a few hundred sends).

Counted instructions barely move with whatever else the machine runs; they do move with how
many sends share a group commit, hence ``--concurrency 1`` (each send its own transaction) and
``--api-only`` (no loops whose work depends on wall time) for comparing builds.

With ``--profile``, the server runs under cProfile only during the last window (switched on
and off by signals) and writes its stats there; ``--compare`` lists the functions whose own
time per send differs most between two such files (of the same number of sends).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import load
from bench.run import database, delivered_count, wait_delivered
from bench.server import LAYOUTS, Server, _wait_ready, make_server, provision
from bench.smpp import add_smpp_route
from bench.smpp_harness import BINDS, Simulator

TICKS = os.sysconf("SC_CLK_TCK")
EVENTS = "instructions:u,instructions:k,task-clock"

# ``tidings serve`` with cProfile switched on by SIGUSR1 and written out by SIGUSR2.
PROFILED_SERVE = """
import cProfile, signal, sys
profile, out = cProfile.Profile(), sys.argv[1]
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def dump(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["tidings", "serve"]
from tidings.cli.main import main
main()
"""


def start(server: Server, profile: Path | None, callgrind: Path | None) -> None:
    if profile is None and callgrind is None:
        server.start()
        return
    log = open(Path(server.env["TIDINGS_DATA_DIR"]) / "server.log", "ab")  # noqa: SIM115
    if callgrind is not None:  # counting starts and stops with the window (callgrind_control)
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={callgrind}", str(Path(sys.executable).parent /
                                                             "tidings"), "serve"]
    else:
        command = [sys.executable, "-c", PROFILED_SERVE, str(profile)]
    server.process = subprocess.Popen(command, env=server.env, stdout=log, stderr=log)
    deadline = time.monotonic() + 1800  # under valgrind, start-up takes minutes
    while time.monotonic() < deadline:
        try:
            _wait_ready(f"{server.url}/readyz")
            return
        except RuntimeError:
            if server.process.poll() is not None:
                raise RuntimeError("the server stopped: see server.log") from None
    raise RuntimeError("the server did not start")


async def send_fixed(url: str, api_key: str, first: int, total: int, concurrency: int) -> int:
    """``total`` single sends numbered from ``first``, ``concurrency`` at a time; accepted."""
    numbers = iter(range(first, first + total))
    accepted = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for i in numbers:
            ok = await load.send_one(session, url, i, None)  # not "+= await": it races
            accepted += ok

    async with load._session(api_key, concurrency) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return accepted


def counted(pid: int, out: Path) -> float:
    """Stop callgrind's count, write it out and read its total of instructions."""
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-d", "window", str(pid)], check=True,
                   capture_output=True)
    dumps = sorted(out.parent.glob(f"{out.name}*"), key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("totals:"):
            return float(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def perf_counts(output: str) -> dict[str, float]:
    """``perf stat -x,`` lines: value,unit,event,..."""
    counts = {}
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].replace(".", "").isdigit():
            counts[fields[2]] = float(fields[0])
    return counts


def measure(server: Server, api_key: str, first: int, sends: int, concurrency: int, *,
            delivered: bool, profile: bool, callgrind: Path | None) -> dict[str, float]:
    """One window: ``sends`` accepted (and, with ``delivered``, delivered), and what the
    server spent on them."""
    pid = server.process.pid if server.process else -1
    perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", EVENTS, "-p", str(pid)],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # perf attached
    if profile:
        os.kill(pid, signal.SIGUSR1)
    if callgrind:
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True,
                       capture_output=True)
    cpu_before = cpu_seconds(pid)
    target = delivered_count(server) + sends if delivered else 0
    accepted = asyncio.run(send_fixed(server.url, api_key, first, sends, concurrency))
    if delivered:
        asyncio.run(wait_delivered(server, target, timeout=300))
    cpu = cpu_seconds(pid) - cpu_before
    if profile:
        os.kill(pid, signal.SIGUSR2)
    instructions = counted(pid, callgrind) if callgrind else 0.0
    perf.send_signal(signal.SIGINT)
    counts = perf_counts(perf.communicate()[1])
    if accepted != sends:
        raise RuntimeError(f"only {accepted} of {sends} sends accepted")
    return {"user_instructions": (instructions or counts.get("instructions:u", 0.0)) / sends,
            "kernel_instructions": counts.get("instructions:k", 0.0) / sends,
            "cpu_us": cpu / sends * 1e6}


def compare(before: Path, after: Path, sends: int, top: int = 40) -> None:
    """The functions whose own time (cProfile's tottime) per send moved most."""
    def own(path: Path) -> dict[str, tuple[float, int]]:
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        own: dict[str, tuple[float, int]] = {}
        for (file, _, name), (_, calls, tottime, _, _) in stats.items():
            # Both builds' paths alike: from the package down, without line numbers.
            where = re.sub(r"^.*/(site-packages|src)/", "", file)
            seconds, count = own.get(f"{where}({name})", (0.0, 0))
            own[f"{where}({name})"] = (seconds + tottime, count + calls)
        return own

    a, b = own(before), own(after)
    total = {side: sum(t for t, _ in p.values()) / sends * 1e6 for side, p in (("a", a), ("b", b))}
    print(f"own time per send: {total['a']:.1f} us -> {total['b']:.1f} us (under cProfile)")
    moved = sorted(set(a) | set(b), key=lambda f: -abs(b.get(f, (0, 0))[0] - a.get(f, (0, 0))[0]))
    for function in moved[:top]:
        (ta, ca), (tb, cb) = a.get(function, (0.0, 0)), b.get(function, (0.0, 0))
        print(f"{(tb - ta) / sends * 1e6:+7.2f} us  calls/send {ca / sends:5.2f} -> "
              f"{cb / sends:5.2f}  {function[-110:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=4_000, help="single sends per window")
    parser.add_argument("--warmup", type=int, default=2_000, help="sends before the first one")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="windows, one after the other")
    parser.add_argument("--api-only", action="store_true",
                        help="TIDINGS_RUN_WORKERS=false: the API's share alone")
    parser.add_argument("--profile", type=Path, help="cProfile the last window into this file")
    parser.add_argument("--callgrind", type=Path,
                        help="run the server under callgrind and count its instructions "
                             "(slow: use a few hundred sends); dumps go to FILE.*")
    parser.add_argument("--smpp", action="store_true",
                        help="send through an SMPP connector to `tidings smsc-sim` (as "
                             "bench.smpp does) rather than the sandbox carrier")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                        help="two --profile files (of --sends sends each): what moved")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare[0], args.compare[1], sends=args.sends)
        return
    settings = {"run_workers": "false"} if args.api_only else {}
    with tempfile.TemporaryDirectory(prefix="tidings-cps-") as tmp, \
            database("sqlite", Path(tmp)) as url:
        server = make_server(Path(tmp), url, LAYOUTS["sqlite"], **settings)
        simulator = Simulator(Path(tmp))
        if args.smpp:
            simulator.start()
            server.cli("migrate")  # the connector is added before the server starts
            add_smpp_route(server, simulator)
        start(server, args.profile, args.callgrind)
        try:
            if args.smpp:
                simulator.wait_bound(BINDS)
            api_key = provision(server, None)["api_key"]
            asyncio.run(send_fixed(server.url, api_key, 0, args.warmup, args.concurrency))
            if not args.api_only:
                asyncio.run(wait_delivered(server, args.warmup, timeout=300))
            for window in range(args.repeat):
                first = args.warmup + window * args.sends
                last = args.profile is not None and window == args.repeat - 1
                row = measure(server, api_key, first, args.sends, args.concurrency,
                              delivered=not args.api_only, profile=last,
                              callgrind=args.callgrind)
                print(f"window {window + 1}: {_instructions(row)}, "
                      f"{row['cpu_us']:,.0f} us CPU per send", flush=True)
        finally:
            server.stop()
            simulator.stop()


def _instructions(row: dict[str, float]) -> str:
    if not row["user_instructions"]:
        return "instructions not counted (no hardware counters: try --callgrind)"
    return (f"{row['user_instructions']:,.0f} user + {row['kernel_instructions']:,.0f} "
            "kernel instructions")


if __name__ == "__main__":
    main()
