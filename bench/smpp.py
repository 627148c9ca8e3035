"""The SMPP path, Tidings against Kannel 1.4.5 on the same simulator.

    python -m bench.smpp --runs 3           # rounds of every default system
    python -m bench.smpp --long --runs 1    # 200,000 messages on 1,000,000 old ones
    python -m bench.smpp --before ../old    # also each Tidings system on that checkout's build

HTTP in, SMPP out, receipts back, callbacks out. Each run of each system gets a
fresh ``tidings smsc-sim`` (receipts ``RECEIPT_DELAY_SECONDS`` after each submit)
and the same messages, each to its own destination: first ``--paced-rate`` a
second for ``--paced-seconds`` (latency while the system keeps up), then
``--total`` flat out (throughput, and how far the callbacks fall behind). The
load comes from ``bench/loadgen.py``, a process of its own per phase, with its
requests encoded before it starts and ``--concurrency`` in flight on keep-alive
sockets where each request carries one message.

* **Tidings** (``tidings-<layout>``): batches to ``POST /v1/messages/batch``;
  ``tidings-<layout>-single``: one ``POST /v1/messages`` per message, as Kannel
  gets them. An SMPP connector of ``BINDS`` binds with a window of ``WINDOW``,
  signed webhooks to a local receiver. ``--prefill N`` (and ``--long``) first
  writes N old messages into the database (``bench/prefill.py``).
* **Kannel** (``bearerbox`` + ``smsbox``): one ``GET /cgi-bin/sendsms`` per
  message (dlr-mask 3), the delivery-report URL on the same receiver; ``kannel``
  in memory, ``BINDS`` transceivers with ``max-pending-submits`` ``WINDOW``;
  ``kannel-durable`` with its spool and its delivery reports in Redis;
  ``kannel-aiohttp``, in memory, driven by the bench's earlier aiohttp generator
  for what that costs. Installed with ``apt-get install kannel`` when missing and
  running as root; skipped otherwise.

Measured: *HTTP accepted/s* (answers that took messages over the generator's time),
*submitted/s* at the simulator (accepted submits over the time from its first to
its last), *delivered/s* (messages over the time from the first HTTP request to
the last ``delivered`` callback), *receipt → callback* latency (the callback's
arrival minus the moment the simulator released the receipt: its ``submitted_at``
plus the receipt delay, matched by destination), the simulator's duplicates, the
callbacks missing, and CPU seconds per process, the generator's included. Then
Tidings / Kannel per round (``bench/rounds.py``), each round flagged when other
work used the cores. Results go to ``bench/results/<timestamp>-smpp.json``
(``-smpp-long.json``) and a table in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.kannel import kannel_installed, kannel_run, kannel_version, redis_installed
from bench.loadgen import Spec, Tally, generate
from bench.prefill import prefill
from bench.rounds import BUSY_CORES, Ratios, busy, describe, other_cores, round_ratios
from bench.run import DOC, ROOT, database, machine
from bench.server import BIN, LAYOUTS, Server, make_server, provision
from bench.smpp_harness import (
    BINDS,
    RECEIPT_DELAY_SECONDS,
    SYSTEM_ID,
    WINDOW,
    Callbacks,
    Phase,
    Simulator,
    measure,
)
from tidings.core.settings import Settings

# --- Tidings ---------------------------------------------------------------------------

def send_to_tidings(url: str, api_key: str, phase: Phase, *, single: bool, batch_size: int,
                    concurrency: int) -> Awaitable[Tally]:
    """``phase`` from a generator process: one ``POST /v1/messages`` a message,
    ``concurrency`` in flight, as Kannel gets them (``single``); or ``POST
    /v1/messages/batch`` requests, two in flight (flat out ``batch_size`` messages each,
    paced a tenth of a second's)."""
    mode = "tidings-single" if single else "tidings-batch"
    return generate(Spec(mode, url, phase.first, phase.count, phase.rate,
                         concurrency=concurrency if single else 2, batch_size=batch_size),
                    api_key)


def tidings_system(name: str) -> tuple[str, bool]:
    """``tidings-<layout>[-single]`` -> (layout, one POST per message)."""
    layout = name.removeprefix("tidings-")
    single = layout.endswith("-single")
    layout = layout.removesuffix("-single")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown system {name!r}: one of {', '.join(SYSTEMS)}")
    return layout, single


def tidings_run(name: str, args: argparse.Namespace, bin_dir: Path = BIN) -> dict[str, Any]:
    layout_name, single = tidings_system(name)
    layout = LAYOUTS[layout_name]
    with tempfile.TemporaryDirectory(prefix="tidings-smpp-") as tmp, \
            database(layout.store, Path(tmp)) as url:
        simulator = Simulator(Path(tmp))
        simulator.start()
        server = make_server(Path(tmp), url, layout)
        server.bin_dir = bin_dir
        try:
            return asyncio.run(_tidings_load(server, simulator, url, single, args))
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
                        single: bool, args: argparse.Namespace) -> dict[str, Any]:
    async with Callbacks() as callbacks:
        server.cli("migrate")  # the connector is added before the server makes the database
        add_smpp_route(server, simulator)
        statuses = None if args.webhook_statuses == "all" else args.webhook_statuses
        account = provision(server, f"{callbacks.url}/hook", statuses)
        prefill_seconds = await prefill(_settings(server), account["id"], args.prefill)
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(simulator.wait_bound, BINDS)
        postgres = database_url.rsplit("/", 1)[1] if "postgresql" in database_url else None
        result = await measure(
            lambda phase: send_to_tidings(server.url, account["api_key"], phase, single=single,
                                          batch_size=args.batch_size,
                                          concurrency=args.concurrency),
            simulator, callbacks, _server_roles(server), args, postgres)
        return {**result, "prefilled": args.prefill, "prefill_seconds": round(prefill_seconds)}


def _settings(server: Server) -> Settings:
    """The server's storage settings, for writing into its database and key store."""
    env = server.env
    return Settings(data_dir=Path(env["TIDINGS_DATA_DIR"]),
                    database_url=env["TIDINGS_DATABASE_URL"],
                    key_dir=Path(env["TIDINGS_KEY_DIR"]))


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

KANNEL_SYSTEMS = {"kannel": (False, "kannel"), "kannel-durable": (True, "kannel"),
                  "kannel-aiohttp": (False, "kannel-aiohttp")}  # name -> (durable, generator)
SYSTEMS = [*(f"tidings-{layout}{shape}" for layout in LAYOUTS for shape in ("", "-single")),
           *KANNEL_SYSTEMS]
DEFAULT_SYSTEMS = ["tidings-sqlite", "tidings-sqlite-webhooks", "tidings-sqlite-webhooks-single",
                   "tidings-postgres-split", "kannel", "kannel-durable", "kannel-aiohttp"]
# Ratios are taken against these; kannel-aiohttp is there for its generator's cost.
REFERENCES = ("kannel", "kannel-durable")
RATIO_KEYS = [("submitted_per_s", "submitted/s"), ("delivered_per_s", "delivered/s"),
              ("http_accepted_per_s", "HTTP accepted/s")]
LONG_TOTAL, LONG_PREFILL = 200_000, 1_000_000
BEFORE = "@before"  # a Tidings system run on the --before build
MARKERS = {False: ("<!-- smpp:start -->", "<!-- smpp:end -->"),
           True: ("<!-- smpp-long:start -->", "<!-- smpp-long:end -->")}
ROWS = [
    ("http_accepted_per_s", "HTTP accepted/s, flat out (Kannel: sendsms 202; Tidings: "
                            "201, or the batches' accepted)"),
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
    ("generator_us_per_message", "load generator's CPU per message, flat out, µs"),
    ("cpu_seconds_elsewhere", "CPU s used by other work during the flat-out phase"),
]
FIGURES = [key for key, _ in ROWS]
NAN = float("nan")


def one_run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name in KANNEL_SYSTEMS:
        durable, generator = KANNEL_SYSTEMS[name]
        return kannel_run(args, durable=durable, generator=generator)
    if name.endswith(BEFORE):
        return tidings_run(name.removesuffix(BEFORE), args, Path(args.before) / ".venv" / "bin")
    return tidings_run(name, args)


def with_before(systems: list[str]) -> list[str]:
    """Each Tidings system followed by the same system on the ``--before`` build, so that
    a change is measured against the build before it in the same rounds."""
    return [twin for name in systems
            for twin in ((name, name + BEFORE) if name.startswith("tidings-") else (name,))]


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
            result = {**one_run(name, args), "load_average_before": load_average}
            result["busy"] = busy(result, args.busy_cores)
            runs[name].append(result)
            print(json.dumps(result), flush=True)
            if result["missing_callbacks"]:
                print(f"{name}: {result['missing_callbacks']} delivered callbacks MISSING",
                      flush=True)
    return {name: summary(system_runs) for name, system_runs in runs.items()}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"median": {key: statistics.median(run[key] for run in runs) for key in FIGURES},
            "range": {key: [min(run[key] for run in runs), max(run[key] for run in runs)]
                      for key in FIGURES},
            "runs": runs}


def ratios(report: dict[str, Any]) -> dict[str, dict[str, Ratios]]:
    """For each pair ``<tidings system>/<kannel reference>`` of the report, the per-round
    ratios of ``RATIO_KEYS``."""
    systems, threshold = report["systems"], report["args"]["busy_cores"]
    pairs: dict[str, dict[str, Ratios]] = {}
    for tidings in (name for name in systems if name.startswith("tidings-")):
        for kannel in (name for name in REFERENCES if name in systems):
            pairs[f"{tidings}/{kannel}"] = {
                key: round_ratios(systems[tidings]["runs"], systems[kannel]["runs"], key,
                                  threshold) for key, _ in RATIO_KEYS}
    return pairs


def table(report: dict[str, Any], results_file: str) -> list[str]:
    args, systems = report["args"], report["systems"]
    lines = [*([f"**{args['label']}**", ""] if args.get("label") else []),
             f"Measured {report['when']} on {report['machine']['cpu']} "
             f"({report['machine']['cores']} cores); per run {args['paced_rate']:,.0f} msg/s "
             f"for {args['paced_seconds']:,.0f} s, then {args['total']:,} messages flat out"
             + (f" on a database pre-filled with {args['prefill']:,} messages"
                if args.get("prefill") else "")
             + f"; {args['concurrency']} requests in flight for one message a request; "
             f"median of {args['runs']} round{'s' if args['runs'] != 1 else ''}, the range "
             f"in brackets; raw runs in "
             f"`bench/results/{results_file}`.", "",
             "| measure | " + " | ".join(report["labels"][name] for name in systems) + " |",
             "|---|" + "---|" * len(systems)]
    for key, label in ROWS:
        cells = [_cell(r["median"].get(key, NAN), r["range"].get(key, [NAN, NAN]))
                 for r in systems.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, "", *ratio_table(report), "", *busy_lines(report), "",
            "CPU per message in the flat-out phase, by process (µs, median of the runs):", "",
            "| system | per process |", "|---|---|",
            *(f"| {report['labels'][name]} | {cpu_per_message(result['runs'])} |"
              for name, result in systems.items())]


def before_after(report: dict[str, Any]) -> dict[str, dict[str, Ratios]]:
    """For each Tidings system run on both builds, this build / the --before build, per
    round."""
    systems, threshold = report["systems"], report["args"]["busy_cores"]
    return {f"{name}/{name}{BEFORE}": {
        key: round_ratios(systems[name]["runs"], systems[name + BEFORE]["runs"], key, threshold)
        for key, _ in RATIO_KEYS} for name in systems if name + BEFORE in systems}


def ratio_table(report: dict[str, Any]) -> list[str]:
    lines = _pairs_table(report, ratios(report), "Tidings / Kannel")
    changes = _pairs_table(report, before_after(report), "this build / before")
    return [*lines, *([""] if lines and changes else []), *changes]


def _pairs_table(report: dict[str, Any], pairs: dict[str, dict[str, Ratios]],
                 title: str) -> list[str]:
    if not pairs:
        return []
    labels = report["labels"]
    lines = [f"{title} in each round (round 1 · 2 · …, a star where the round was "
             "busy), then the median and the range of those ratios:", "",
             f"| {title} | " + " | ".join(label for _, label in RATIO_KEYS) + " |",
             "|---|" + "---|" * len(RATIO_KEYS)]
    for pair, by_key in pairs.items():
        tidings, kannel = pair.split("/")
        cells = [describe(by_key[key]) for key, _ in RATIO_KEYS]
        lines.append(f"| {labels[tidings]} / {labels[kannel]} | " + " | ".join(cells) + " |")
    return lines


def busy_lines(report: dict[str, Any]) -> list[str]:
    """Which rounds other work disturbed: cores' worth of CPU outside the measured
    processes, on average over each run's flat-out phase."""
    threshold = report["args"]["busy_cores"]
    lines = []
    for number in range(report["args"]["runs"]):
        found = {name: other_cores(r["runs"][number]["cpu_seconds_elsewhere"],
                                   r["runs"][number]["flat_out_seconds"])
                 for name, r in report["systems"].items()}
        worst = max(found, key=lambda name: found[name])
        state = "busy" if found[worst] > threshold else "quiet"
        lines.append(f"- round {number + 1}: {state} (other work up to {found[worst]:.2f} "
                     f"cores, in the {report['labels'][worst]} run)")
    return [f"Other work during each round (busy above {threshold} cores):", "", *lines]


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
    """Replace the SMPP table (the long run's, for a long run) in docs/benchmarks.md."""
    start, end = MARKERS[report["args"]["long"]]
    text = DOC.read_text()
    if start not in text:
        text += f"\n## SMPP path and Kannel\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    body = "\n".join(table(report, results_file))
    DOC.write_text(head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1])


def labels(kannel: str, before: str | None = None) -> dict[str, str]:
    names = {f"tidings-{layout}": f"Tidings, {layout}" for layout in LAYOUTS}
    singles = {f"tidings-{layout}-single": f"Tidings, {layout}, one POST a message"
               for layout in LAYOUTS}
    tidings = {**names, **singles}
    if before:
        tidings.update({name + BEFORE: f"{label}, build {before}"
                        for name, label in tidings.items()})
    return {**tidings, "kannel": f"Kannel {kannel}",
            "kannel-durable": f"Kannel {kannel}, durable (spool, DLRs in Redis)",
            "kannel-aiohttp": f"Kannel {kannel}, aiohttp generator"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--runs", type=int, default=3, help="rounds")
    parser.add_argument("--total", type=int, default=20_000, help="messages a run, flat out")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--paced-rate", type=float, default=200.0,
                        help="messages per second of the latency phase")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", "--kannel-concurrency", type=int, default=64,
                        help="requests in flight where each carries one message (Kannel, "
                             "Tidings' -single systems)")
    parser.add_argument("--prefill", type=int, default=0,
                        help="old messages written into Tidings' database before each run")
    parser.add_argument("--long", action="store_true",
                        help=f"the long run: --total {LONG_TOTAL:,} and --prefill "
                             f"{LONG_PREFILL:,} unless given; its own table in the docs")
    parser.add_argument("--busy-cores", type=float, default=BUSY_CORES,
                        help="a run is busy when other work used more cores than this")
    parser.add_argument("--label", default="", help="a line above the table in the docs")
    parser.add_argument("--before", default=None, metavar="CHECKOUT",
                        help="another checkout of Tidings with its own .venv (make "
                             ".venv/.installed there): each Tidings system also runs on that "
                             "build, in the same rounds, and the table shows this build / "
                             "that one")
    parser.add_argument("--webhook-statuses", default="final",
                        help="the Tidings account's webhook_statuses: 'final' (one webhook "
                             "per message, as Kannel's dlr-mask 3), 'all' (queued, sent and "
                             "delivered), or a comma-separated list")
    args = parser.parse_args()
    if args.long:
        given = {arg.split("=")[0] for arg in sys.argv[1:]}
        args.total = args.total if "--total" in given else LONG_TOTAL
        args.prefill = args.prefill if "--prefill" in given else LONG_PREFILL
    systems = args.systems.split(",")
    unknown = [name for name in systems if name not in SYSTEMS]
    if unknown or args.runs < 1 or args.total < 2 or args.prefill < 0:
        parser.error(f"unknown systems {unknown}" if unknown else
                     "--runs must be at least 1, --total 2, --prefill 0")
    if args.before and not (Path(args.before) / ".venv" / "bin" / "tidings").exists():
        parser.error(f"--before {args.before}: no .venv/bin/tidings there (run make "
                     ".venv/.installed in it)")
    if args.before and args.prefill:
        parser.error("--before cannot pre-fill: the pre-fill writes this build's schema")
    return args


def build_name(checkout: str) -> str:
    """The short commit of a checkout, for the table's labels."""
    done = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or checkout


def main() -> None:
    args = parse_args()
    systems = args.systems.split(",")
    if args.before:
        systems = with_before(systems)
    if any(s in KANNEL_SYSTEMS for s in systems) and not kannel_installed():
        print("Kannel skipped: no bearerbox (apt-get install kannel, as root)", flush=True)
        systems = [s for s in systems if s not in KANNEL_SYSTEMS]
    if "kannel-durable" in systems and not redis_installed():
        print("durable Kannel skipped: no redis-server (apt-get install redis-server, as "
              "root)", flush=True)
        systems.remove("kannel-durable")
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "args": vars(args), "receipt_delay_seconds": RECEIPT_DELAY_SECONDS,
        "binds": BINDS, "window": WINDOW, "labels": labels(kannel_version(),
                                                        args.before and build_name(args.before)),
        "systems": run_systems(systems, args)}
    kind = "smpp-long" if args.long else "smpp"
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}-{kind}.json"
    out.write_text(json.dumps(report, indent=2))
    write_table(report, out.name)
    print(f"wrote {out} and {DOC.relative_to(ROOT)}")
    print(json.dumps({name: r["median"] for name, r in report["systems"].items()}, indent=2))
    print("\n".join(ratio_table(report)))


if __name__ == "__main__":
    main()
