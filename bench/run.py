"""``make bench``: throughput and latency of a real server, on SQLite and PostgreSQL.

Each scenario runs against a fresh ``tidings serve`` process with the sandbox
carrier; every figure is the median of ``--runs`` runs. Results go to
``bench/results/<timestamp>.json`` and the table in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import load
from bench.receiver import Receiver
from bench.server import LAYOUTS, Server, make_server, provision

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("TIDINGS_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
APP_ROLE = "tidings_app"


def delivered_count(server: Server) -> int:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(r'tidings_message_status_changes_total\{status="delivered"\} ([0-9.e+]+)',
                      text)
    return int(float(match.group(1))) if match else 0


async def wait_delivered(server: Server, target: int, *, timeout: float) -> float:
    """Seconds until ``target`` messages are delivered (this server's status counter)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if await asyncio.to_thread(delivered_count, server) >= target:
            return time.perf_counter() - start
        await asyncio.sleep(0.25)
    raise TimeoutError(f"only {delivered_count(server)} of {target} delivered")


@contextmanager
def database(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{data_dir / 'tidings.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    # One role owns the schema and does all the work, as the benchmarks always ran
    # (docs/operations.md, PostgreSQL roles: a single role in tidings_cross_tenant).
    asyncio.run(_pg_admin(
        *(_create_role(role, options) for role, options in (
            ("tidings_runtime", "NOLOGIN"),
            ("tidings_cross_tenant", "NOLOGIN IN ROLE tidings_runtime"),
            (APP_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS"))),
        f"GRANT tidings_cross_tenant TO {APP_ROLE}",
        f"CREATE DATABASE {name} OWNER {APP_ROLE}"))
    host = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{APP_ROLE}@{host}/{name}"
    finally:
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _create_role(role: str, options: str) -> str:
    return (f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} {options}; END IF; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")


async def _pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def throughput(server: Server, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    singles = await load.singles(server.url, api_key, seconds=args.seconds,
                                 concurrency=args.concurrency)
    await wait_delivered(server, singles.accepted, timeout=300)
    start = time.perf_counter()
    batch = await load.batches(server.url, api_key, total=args.batch_total,
                               batch_size=args.batch_size, concurrency=2)
    await wait_delivered(server, singles.accepted + batch.accepted, timeout=600)
    end_to_end = time.perf_counter() - start
    return {"single_accepted_per_s": singles.per_second, "single_errors": singles.errors,
            "batch_accepted_per_s": batch.per_second, "batch_errors": batch.errors,
            "batch_delivered_per_s": batch.accepted / end_to_end}


async def latency(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    receiver = Receiver()
    await receiver.start()
    try:
        account = provision(server, receiver.url)
        paced = await load.paced(server.url, account["api_key"], rate=args.rate,
                                 seconds=args.seconds)
        deadline = time.perf_counter() + 120
        while len(receiver.latencies_ms) < paced.accepted and time.perf_counter() < deadline:
            await asyncio.sleep(0.25)
        cuts = statistics.quantiles(receiver.latencies_ms, n=100)
        return {"paced_rate": args.rate, "paced_accepted_per_s": paced.per_second,
                "webhooks_received": sum(receiver.counts.values()),
                "receipt_to_webhook_p50_ms": statistics.median(receiver.latencies_ms),
                "receipt_to_webhook_p99_ms": cuts[98]}
    finally:
        await receiver.stop()


def one_run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    layout = LAYOUTS[backend]
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
        data_dir = Path(tmp)
        with database(layout.store, data_dir) as url:
            server = make_server(data_dir, url, layout)
            server.start()
            try:
                account = provision(server, None)
                result = asyncio.run(throughput(server, account["api_key"], args))
                result.update(asyncio.run(latency(server, args)))
            finally:
                server.stop()
    return result


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
ROWS = [
    ("single_accepted_per_s", "single POST /v1/messages, accepted/s", "{:,.0f}"),
    ("batch_accepted_per_s", "POST /v1/messages/batch, accepted/s", "{:,.0f}"),
    ("batch_delivered_per_s", "batch, accepted → delivered end to end, msg/s", "{:,.0f}"),
    ("receipt_to_webhook_p50_ms", "receipt → webhook p50 at the paced rate, ms", "{:,.1f}"),
    ("receipt_to_webhook_p99_ms", "receipt → webhook p99 at the paced rate, ms", "{:,.1f}"),
    ("paced_accepted_per_s", "paced rate achieved, msg/s", "{:,.0f}"),
]


def write_table(report: dict[str, Any], results_file: str) -> None:
    """Replace the results table in docs/benchmarks.md with this report's medians."""
    backends = list(report["backends"])
    lines = [f"Measured {report['when']} on {report['machine']['cpu']} "
             f"({report['machine']['cores']} cores), Python {report['machine']['python']}; "
             f"median of {report['args']['runs']} runs; raw runs in "
             f"`bench/results/{results_file}`.", "",
             "| measure | " + " | ".join(backends) + " |",
             "|---|" + "---|" * len(backends)]
    for key, label, fmt in ROWS:
        cells = [fmt.format(report["backends"][b]["median"][key]) for b in backends]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    DOC.write_text(head + START + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres,postgres-split",
                        help=f"comma-separated, of {', '.join(LAYOUTS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-total", type=int, default=30_000)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "args": vars(args), "backends": {}}
    for backend in args.backends.split(","):
        runs = []
        for number in range(args.runs):
            print(f"{backend}: run {number + 1}/{args.runs}", flush=True)
            runs.append(one_run(backend, args))
            print(json.dumps(runs[-1], indent=1), flush=True)
        report["backends"][backend] = {"median": medians(runs), "runs": runs}
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2))
    write_table(report, out.name)
    print(f"wrote {out} and {DOC.relative_to(ROOT)}")
    print(json.dumps({b: r["median"] for b, r in report["backends"].items()}, indent=2))


if __name__ == "__main__":
    main()
