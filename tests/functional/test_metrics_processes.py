"""``tidings serve --processes 2`` on PostgreSQL: /metrics, whichever process answers,
sums what every process counted (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.server import TidingsServer, tidings_env
from tests.pg import PgDatabase, role_settings

pytestmark = pytest.mark.slow

COUNTED = "tidings_http_requests_total"
MAX_REQUESTS = 400
WAIT_SECONDS = 30.0


def healthz_count(families: Iterable[Metric]) -> float:
    return sum(s.value for f in families for s in f.samples
               if s.name == COUNTED and s.labels.get("route") == "/healthz")


def per_process(shared: Path, scratch: Path) -> dict[str, float]:
    """/healthz requests each process counted, read from its own file alone."""
    counts = {}
    for path in shared.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        count = healthz_count(registry.collect())
        if count:
            counts[path.stem] = count
    return counts


async def healthz(url: str) -> None:
    async with httpx.AsyncClient() as client:  # a connection of its own: any process takes it
        assert (await client.get(f"{url}/healthz")).status_code == 200


def scraped(url: str) -> float:
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text
    return healthz_count(text_string_to_metric_families(text))


@pytest.mark.postgres
async def test_metrics_of_every_api_process_are_summed(
        tmp_path: Path, postgres_database: PgDatabase) -> None:
    data_dir = tmp_path / "data"
    shared, scratch = data_dir / "metrics-multiprocess", tmp_path / "scratch"
    shared.mkdir(parents=True)
    (shared / "counter_1.db").write_bytes(b"left by an earlier start")  # unreadable
    scratch.mkdir()
    env = tidings_env(data_dir, database_url=postgres_database.app_url,
                      **role_settings(postgres_database.app_url), run_workers="false",
                      api_processes=2)
    api = TidingsServer(data_dir, env, log_path=tmp_path / "api.log")
    await api.start_async()
    try:
        sent = 0
        while len(per_process(shared, scratch)) < 2:
            assert sent < MAX_REQUESTS, "every request went to the same process"
            await asyncio.gather(*(healthz(api.url) for _ in range(10)))
            sent += 10
        deadline = time.monotonic() + WAIT_SECONDS  # a count lands just after its answer
        while sum(per_process(shared, scratch).values()) < sent:
            assert time.monotonic() < deadline, "the counts never added up"
            await asyncio.sleep(0.05)
        assert [scraped(api.url) for _ in range(6)] == [sent] * 6
    finally:
        exit_code = await api.stop_async()
    assert exit_code == 0, api.log_tail()
    assert not shared.exists()
