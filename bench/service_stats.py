"""How long the daily build of the service statistics (RET-3) takes for a day of a
million messages, and how long it holds the event loop the send path shares.

::

    .venv/bin/python -m bench.service_stats --messages 1000000 --accounts 50 [--store postgres]

The database is filled first, in bulk (as ``bench/prefill.py`` does): ``--messages``
messages of one day, five days ago, spread over ``--accounts`` accounts and over the
day, each account writing to ``--people`` people of its own (a number of one of twenty
countries each), every message under its person's key with its blind index, as the
send path writes them; 90 % SMS, 5 % WhatsApp, 5 % e-mail; 90 % delivered, 6 % failed.
Then ``usage_stats.service.build_day`` counts that day in a process of its own, tuned
as ``tidings worker`` is (``core/gc_tuning.py``), while a probe on its event loop
sleeps a millisecond at a time and records by how much each sleep overran: the longest
overrun is the longest a send on that event loop would have waited. The same probe runs
for five seconds before the build, so that what the machine's other load does to it is
seen apart (``loop_overrun_ms_idle``), with the load average. Printed and written
to ``bench/results/<UTC timestamp>-service-stats.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.run import ROOT, database, machine
from tidings.accounts.models import AccountStatus
from tidings.accounts.provision import provision_account
from tidings.audit.service import Actor
from tidings.core.ids import id_floor
from tidings.core.settings import Settings
from tidings.messaging.status_changes import MESSAGES
from tidings.privacy.subjects import subject_index, subjects_for
from tidings.runtime import Runtime, close_runtime, open_runtime
from tidings.storage.bulk import insert_many
from tidings.storage.db import SYSTEM
from tidings.usage_stats.days import day_start
from tidings.usage_stats.service import build_day

CHUNK = 10_000
IDLE_SECONDS = 5.0
_DIGITS = "0123456789abcdefghjkmnpqrstvwxyz"  # core/ids.py's alphabet
# Twenty countries' mobile prefixes, the first ones the busiest.
COUNTRIES = ["+1202555", "+4477009", "+3361234", "+49151234", "+3934712", "+3460012",
             "+3161234", "+4670123", "+4366412", "+4179123", "+3247012", "+4512345",
             "+4791234", "+35840123", "+4860123", "+42060123", "+3069123", "+8190123",
             "+5511912", "+6141234"]
ACTOR = Actor("operator", "bench")


def id_at(millis: int) -> str:
    """A message id made at ``millis``: its time, then 80 random bits (``core/ids.py``)."""
    return id_floor("msg", millis)[:-16] + "".join(secrets.choice(_DIGITS) for _ in range(16))


def person_number(country: int, n: int) -> str:
    return f"{COUNTRIES[country]}{n % 10_000:04d}"


async def fill(rt: Runtime, day_begins: datetime, args: argparse.Namespace) -> float:
    """The day's messages, in bulk; the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(7)
    weights = [1 / (rank + 1) for rank in range(len(COUNTRIES))]
    per_account = args.messages // args.accounts
    for a in range(args.accounts):
        made = await provision_account(rt, name=f"Bench {a}", parent_id=None,
                                       status=AccountStatus.ACTIVE, actor=ACTOR)
        tenant = made.account.id
        keys = await rt.vault.keys_for(tenant)
        people = [person_number(rng.choices(range(len(COUNTRIES)), weights)[0],
                                a * args.people + p) for p in range(args.people)]
        emails = [f"p{a}-{p}@example.com" for p in range(args.people // 20)]
        number_keys = await subjects_for(keys, people)
        email_keys = await subjects_for(keys, emails)
        for first in range(0, per_account, CHUNK):
            rows = [_row(rng, tenant, keys, people, number_keys, emails, email_keys,
                         day_begins) for _ in range(min(CHUNK, per_account - first))]
            async with rt.db.core(tenant=tenant) as conn:
                await insert_many(conn, MESSAGES, rows)
    if not rt.db.is_sqlite:
        async with rt.db.core(tenant=SYSTEM) as conn:
            await conn.execute(text("ANALYZE messages"))
    return time.perf_counter() - started


def _row(rng: random.Random, tenant: str, keys: Any, people: list[str], number_keys: Any,
         emails: list[str], email_keys: Any, day_begins: datetime) -> dict[str, Any]:
    kind = rng.random()
    channel = "email" if kind < 0.05 else "whatsapp" if kind < 0.10 else "sms"
    if channel == "email":
        p = rng.randrange(len(emails))
        address, key = emails[p], email_keys[p]
    else:
        p = rng.randrange(len(people))
        address, key = people[p], number_keys[p]
    fate = rng.random()
    status = "delivered" if fate < 0.90 else "failed" if fate < 0.96 else "sent"
    moment = day_begins + timedelta(milliseconds=rng.randrange(86_400_000))
    return {"id": id_at(int(moment.timestamp() * 1000)), "tenant_id": tenant,
            "direction": "outbound", "channel": channel, "status": status,
            "to_enc": key.encrypt(address, field="messages.to"),
            "to_index": subject_index(keys, address),
            "from_enc": b"\x02bench", "body_enc": b"\x02bench", "encoding": "GSM-7",
            "num_segments": 1 + (fate > 0.8), "status_callback": None, "send_at": None,
            "expires_at": None, "connector": "smsc", "carrier_message_id": None,
            "error_code": None, "smpp_receipt_to": None, "fallback_channels": None,
            "fallback_after": None, "content_enc": None, "subject_key": key.key_id,
            "from_index": None, "event_count": 1, "created_at": moment, "updated_at": moment}


async def probe(stop: asyncio.Event, overruns: list[float]) -> None:
    """Sleep a millisecond at a time; how late each wake-up was, in milliseconds."""
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.001)
        overruns.append((time.perf_counter() - began) * 1000 - 1)


def memory_mib(field: str) -> int:
    """A figure of /proc/self/status (``VmRSS``: now; ``VmHWM``: the peak), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def spread(overruns: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(overruns, n=100)
    return {"p50": round(statistics.median(overruns), 2), "p99": round(cuts[98], 2),
            "max": round(max(overruns), 2)}


async def filled(args: argparse.Namespace, settings: Settings) -> tuple[float, str]:
    """The day's messages written; the seconds it took, and the day."""
    rt = await open_runtime(settings, start_background=False)
    try:
        day = (datetime.now(UTC) - timedelta(days=5)).date()
        return await fill(rt, day_start(day), args), day.isoformat()
    finally:
        await close_runtime(rt)


def build_in_a_fresh_process(settings: Settings, day: str) -> dict[str, Any]:
    """The build, in a process that has loaded nothing else (the fill's objects would
    weigh on its garbage collector), tuned as ``tidings worker`` is."""
    from tidings.core.gc_tuning import tune_for_server

    async def build() -> dict[str, Any]:
        rt = await open_runtime(settings, start_background=False)
        try:
            tune_for_server()
            rss_before = memory_mib("VmRSS")
            stop, idle = asyncio.Event(), list[float]()
            watcher = asyncio.create_task(probe(stop, idle))
            await asyncio.sleep(IDLE_SECONDS)  # the machine's own noise, for comparison
            stop.set()
            await watcher
            stop, during = asyncio.Event(), list[float]()
            watcher = asyncio.create_task(probe(stop, during))
            built = await build_day(rt, date.fromisoformat(day))
            stop.set()
            await watcher
        finally:
            await close_runtime(rt)
        return {"build_seconds": built.seconds, "messages": built.messages,
                "buckets": built.buckets,
                "messages_per_second": round(built.messages / built.seconds),
                "loop_overrun_ms_idle": spread(idle), "loop_overrun_ms_during": spread(during),
                "load_average": [round(n, 1) for n in os.getloadavg()],
                "rss_mib": {"before_build": rss_before, "peak": memory_mib("VmHWM")}}

    return asyncio.run(build())


def measure(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    settings = Settings(data_dir=folder / "data", key_dir=folder / "keys", database_url=url,
                        subject_key_pool_batch=5000)
    fill_seconds, day = asyncio.run(filled(args, settings))
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        found = pool.submit(build_in_a_fresh_process, settings, day).result()
    return {"fill_seconds": round(fill_seconds, 1), **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--people", type=int, default=4000, help="people per account")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="tidings-stats-") as tmp, \
            database(args.store, Path(tmp)) as url:
        report.update(measure(args, url, Path(tmp)))
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}-service-stats.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
