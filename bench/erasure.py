"""How long erasing one person takes in an account of a million messages, and what it
does to sends meanwhile.

The requirement (issue 16): erasure of one data subject among 1,000,000 messages
finishes in seconds and does not block sending. Measured on a real ``tidings serve``::

    .venv/bin/python -m bench.erasure --messages 1000000 --theirs 200

The account is pre-filled with ``--messages`` old delivered messages
(``bench/prefill.py``), then ``--theirs`` messages are sent to the person through the
API (each under the person's key, as every send is). A sender then sends, one at a
time, for ``--seconds`` before the erasure request and on until it is done; the
request is recorded (``POST /v1/privacy/requests``) and read back every 50 ms until
``completed``. Printed and written to ``bench/results/<UTC timestamp>-erasure.json``:
the erasure's wall time (recorded to completed, the job's pick-up included), the
messages it scrubbed, and the sends' latency (p50, p99, max) before and during it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.portal_pages import cli_json
from bench.prefill import prefill
from bench.run import ROOT, database, machine
from bench.server import LAYOUTS, Server, make_server
from tidings.core.settings import Settings

PERSON = "+12025550173"
OTHERS = 12025560000  # the sender's recipients: +1 202 556 0000…


async def send_for(api: httpx.AsyncClient, stop: asyncio.Event, times: list[float]) -> None:
    """One send at a time to ever new numbers until ``stop``; each one's milliseconds."""
    n = 0
    while not stop.is_set():
        began = time.perf_counter()
        sent = await api.post("/v1/messages", json={"to": f"+{OTHERS + n}", "from": "Bench",
                                                    "body": "Hello"})
        times.append((time.perf_counter() - began) * 1000)
        if sent.status_code != 201:
            raise RuntimeError(f"send refused: {sent.status_code} {sent.text[:200]}")
        n += 1


def spread(times: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"sends": len(times), "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(cuts[98], 1), "max_ms": round(max(times), 1)}


async def erase(api: httpx.AsyncClient) -> tuple[float, dict[str, Any]]:
    """Seconds from recording the request to its completion, and its outcome."""
    began = time.perf_counter()
    made = await api.post("/v1/privacy/requests", json={"type": "erasure",
                                                         "subject": {"number": PERSON}})
    if made.status_code != 201:
        raise RuntimeError(f"request refused: {made.status_code} {made.text[:200]}")
    while True:
        shown = (await api.get(f"/v1/privacy/requests/{made.json()['id']}")).json()
        if shown["status"] == "completed":
            return time.perf_counter() - began, dict(shown["outcome"])
        if shown["status"] != "received":
            raise RuntimeError(f"the erasure ended {shown['status']}")
        await asyncio.sleep(0.05)


async def during(server: Server, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as api:
        for i in range(args.theirs):
            sent = await api.post("/v1/messages", json={"to": PERSON, "from": "Bench",
                                                        "body": f"Yours {i}"})
            if sent.status_code != 201:
                raise RuntimeError(f"send refused: {sent.status_code} {sent.text[:200]}")
        await asyncio.sleep(2)  # their receipts are in: nothing of theirs still moves
        before: list[float] = []
        stop = asyncio.Event()
        sender = asyncio.create_task(send_for(api, stop, before))
        await asyncio.sleep(args.seconds)
        meanwhile: list[float] = []
        before_count = len(before)
        seconds, outcome = await erase(api)
        meanwhile.extend(before[before_count:])
        stop.set()
        await sender
    return {"erasure_seconds": round(seconds, 3), "outcome": outcome,
            "sends_before": spread(before[:before_count]),
            "sends_during": spread(meanwhile) if len(meanwhile) > 1 else meanwhile}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidings-erasure-") as tmp, \
            database(args.store, Path(tmp)) as url:
        server = make_server(Path(tmp), url, LAYOUTS[args.store])
        server.cli("migrate")
        account = cli_json(server, "accounts", "create", "--name", "Bench")
        env = server.env
        settings = Settings(data_dir=Path(env["TIDINGS_DATA_DIR"]),
                            database_url=env["TIDINGS_DATABASE_URL"],
                            key_dir=Path(env["TIDINGS_KEY_DIR"]))
        prefill_seconds = asyncio.run(prefill(settings, account["id"], args.messages))
        server.start()
        try:
            found = asyncio.run(during(server, account["api_key"], args))
        finally:
            server.stop()
    return {"prefill_seconds": round(prefill_seconds, 1), **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000,
                        help="old messages written into the account first")
    parser.add_argument("--theirs", type=int, default=200,
                        help="messages sent to the person erased")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="sending before the erasure, for the baseline")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "args": vars(args)}
    report.update(measure(args))
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}-erasure.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
