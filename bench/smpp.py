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
import math
import os
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.kannel import kannel_installed, kannel_run, kannel_version
from bench.run import DOC, ROOT, database, machine
from bench.server import LAYOUTS, Server, make_server, provision
from bench.smpp_harness import (
    BINDS,
    RECEIPT_DELAY_SECONDS,
    SYSTEM_ID,
    WINDOW,
    Callbacks,
    Phase,
    Simulator,
    destination,
    measure,
    send_at_rate,
    send_flat_out,
)

# --- Tidings ---------------------------------------------------------------------------

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


def tidings_run(layout_name: str, args: argparse.Namespace) -> dict[str, Any]:
    layout = LAYOUTS[layout_name]
    with tempfile.TemporaryDirectory(prefix="tidings-smpp-") as tmp, \
            database(layout.store, Path(tmp)) as url:
        simulator = Simulator(Path(tmp))
        simulator.start()
        server = make_server(Path(tmp), url, layout)
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
        server.cli("migrate")  # the connector is added before the server makes the database
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
    for helper in server.helpers:
        roles[helper.pid] = "tidings worker --jobs webhook.deliver"
    return roles


# --- the report ------------------------------------------------------------------------

SYSTEMS = [*(f"tidings-{layout}" for layout in LAYOUTS), "kannel", "kannel-spool"]
DEFAULT_SYSTEMS = ["tidings-sqlite", "tidings-sqlite-webhooks", "tidings-postgres-split",
                   "kannel", "kannel-spool"]
START, END = "<!-- smpp:start -->", "<!-- smpp:end -->"
ROWS = [
    ("submitted_per_s", "submitted/s at the simulator, flat out"),
    ("delivered_per_s", "delivered/s end to end (to the last callback), flat out"),
    ("paced_p50_ms", "receipt → callback p50 at the paced rate, ms"),
    ("paced_p99_ms", "receipt → callback p99 at the paced rate, ms"),
    ("flat_out_p50_ms", "receipt → callback p50 flat out, ms"),
    ("flat_out_p99_ms", "receipt → callback p99 flat out, ms"),
    ("flat_out_stored_p50_ms", "… of which receipt → stored, p50 flat out, ms"),
    ("flat_out_posted_p50_ms", "… and stored → callback, p50 flat out, ms"),
    ("duplicates", "duplicate submits (simulator)"),
    ("missing_callbacks", "delivered callbacks missing"),
    ("cpu_seconds_elsewhere", "CPU s used by other work during the flat-out phase"),
]
FIGURES = [key for key, _ in ROWS]
NAN = float("nan")


def run_systems(systems: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """``args.runs`` rounds, each running every system once in turn: the machine's speed
    drifts by tens of percent within an hour, and interleaved rounds spread that drift
    over every system alike instead of handing one system the fast minutes."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for number in range(args.runs):
        for name in systems:
            load_average = os.getloadavg()
            print(f"{name}: run {number + 1}/{args.runs}, load average {load_average}",
                  flush=True)
            result = (kannel_run(args, spooled=name == "kannel-spool")
                      if name.startswith("kannel") else
                      tidings_run(name.removeprefix("tidings-"), args))
            runs[name].append({**result, "load_average_before": load_average})
            print(json.dumps(runs[name][-1]), flush=True)
    return {name: summary(system_runs) for name, system_runs in runs.items()}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
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
        cells = [_cell(r["median"].get(key, NAN), r["range"].get(key, [NAN, NAN]))
                 for r in systems.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, "", "CPU per message in the flat-out phase, by process (µs, median of "
            "the runs):", "", "| system | per process |", "|---|---|",
            *(f"| {report['labels'][name]} | {cpu_per_message(result['runs'])} |"
              for name, result in systems.items())]


def _cell(median: float, low_high: list[float]) -> str:
    if math.isnan(median):
        return "\N{EN DASH}"  # not measured for this system
    low, high = low_high
    return f"{median:,.0f} ({low:,.0f}\N{EN DASH}{high:,.0f})"


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
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
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
        "systems": run_systems(systems, args)}
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}-smpp.json"
    out.write_text(json.dumps(report, indent=2))
    write_table(report, out.name)
    print(f"wrote {out} and {DOC.relative_to(ROOT)}")
    print(json.dumps({name: r["median"] for name, r in report["systems"].items()}, indent=2))


if __name__ == "__main__":
    main()
