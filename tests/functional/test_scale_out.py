"""Scale-out on PostgreSQL: several API processes and a separate ``tidings worker``.

Real processes, as an operator runs them: two API processes behind one port answer
sends, one worker dispatches, applies receipts and delivers webhooks. The workers'
poll is set to a minute, so the messages can only move promptly if the API
processes' nudges reach the worker over PostgreSQL ``NOTIFY``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from tests.conftest import HookServer
from tests.functional.server import TidingsServer, run_cli, run_cli_async, tidings_env
from tests.pg import PgDatabase, role_settings

pytestmark = pytest.mark.slow

MESSAGES = 30
WAIT_SECONDS = 30.0  # far below the workers' 60 s poll
HELD_BY_WORKER = 5


async def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.postgres
async def test_api_processes_and_a_worker_deliver_every_message_once(
        tmp_path: Path, postgres_database: PgDatabase, hooks: HookServer) -> None:
    app_url, admin_dsn = postgres_database.app_url, postgres_database.admin_dsn
    data_dir = tmp_path / "data"
    env = tidings_env(data_dir, database_url=app_url, **role_settings(app_url),
                      run_workers="false", api_processes=2,
                      worker_poll_seconds=60, sandbox_receipt_delay_seconds=0.1)
    made = await run_cli_async(env, "accounts", "create", "--name", "Acme", "--json",
                               "--webhook-url", hooks.url)
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {orjson.loads(made.stdout)['api_key']}"}

    worker = TidingsServer(data_dir, env, command=("worker",), ready_path="/healthz",
                           log_path=tmp_path / "worker.log")
    api = TidingsServer(data_dir, env, log_path=tmp_path / "api.log")
    await worker.start_async()
    await api.start_async()
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
            await asyncio.sleep(1.5)  # the worker's first (empty) poll is behind it
            sent = [await client.post("/v1/messages", json={
                "to": f"+1202555{1000 + i}", "from": "Acme", "body": f"Hi {i}"})
                for i in range(MESSAGES)]
            assert all(r.status_code == 201 for r in sent), [r.text for r in sent]
            ids = {r.json()["id"] for r in sent}

            def every_webhook() -> bool:
                # Webhooks may arrive out of order (one deferred while its origin is
                # busy): wait for each message's three, not only its last.
                got = {(b["data"]["message_id"], b["data"]["status"]) for b in hooks.bodies()}
                return all((i, status) in got
                           for i in ids for status in ("queued", "sent", "delivered"))

            await _wait_for(every_webhook, "every message's queued, sent and delivered webhook")
            metrics = httpx.get(f"{worker.url}/metrics").text
    finally:
        api_exit, worker_exit = await api.stop_async(), await worker.stop_async()

    assert (api_exit, worker_exit) == (0, 0), api.log_tail() + worker.log_tail()
    statuses = [(b["data"]["message_id"], b["sequence"]) for b in hooks.bodies()]
    assert len(statuses) == len(set(statuses)), "a webhook event was delivered twice"
    assert 'tidings_message_status_changes_total{status="delivered"} 30.0' in metrics
    conn = await asyncpg.connect(admin_dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM messages GROUP BY status")
        left = [dict(r) for r in await conn.fetch("SELECT * FROM jobs")]
    finally:
        await conn.close()
    assert {r["status"]: r["count"] for r in rows} == {"delivered": MESSAGES}
    assert left == []


def test_several_api_processes_refuse_sqlite(tmp_path: Path) -> None:
    result = run_cli(tidings_env(tmp_path / "data", run_workers="false"),
                     "serve", "--processes", "2")
    assert result.returncode != 0
    assert "need PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "tidings.db").exists(), "nothing is created"


@pytest.mark.postgres
def test_several_api_processes_refuse_to_run_the_workers_too(
        tmp_path: Path, postgres_database: PgDatabase) -> None:
    app_url = postgres_database.app_url
    result = run_cli(tidings_env(tmp_path / "data", database_url=app_url, **role_settings(app_url)),
                     "serve", "--processes", "2")
    assert result.returncode != 0
    assert "TIDINGS_RUN_WORKERS=false" in result.stderr
    assert "Traceback" not in result.stderr


def test_processes_must_be_a_positive_number(tmp_path: Path) -> None:
    for bad in ("0", "-3", "two", "65"):
        result = run_cli(tidings_env(tmp_path / "data"), "serve", "--processes", bad)
        assert result.returncode == 2, (bad, result.stderr)
        assert "--processes" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.postgres
async def test_a_webhook_worker_beside_the_worker_shares_the_webhooks_once_each(
        tmp_path: Path, postgres_database: PgDatabase, hooks: HookServer) -> None:
    app_url = postgres_database.app_url
    data_dir = tmp_path / "data"
    env = tidings_env(data_dir, database_url=app_url, **role_settings(app_url),
                      run_workers="false", api_processes=2,
                      sandbox_receipt_delay_seconds=0.1)
    made = await run_cli_async(env, "accounts", "create", "--name", "Acme", "--json",
                               "--webhook-url", hooks.url)
    headers = {"Authorization": f"Bearer {orjson.loads(made.stdout)['api_key']}"}
    # The full worker holds at most HELD_BY_WORKER webhooks at a time, and the receiver
    # answers none until one more is open: nothing moves unless the helper takes a share.
    held = {"TIDINGS_WEBHOOK_LOOPS": "1", "TIDINGS_WORKER_BATCH_SIZE": str(HELD_BY_WORKER),
            "TIDINGS_WEBHOOK_TIMEOUT_SECONDS": str(WAIT_SECONDS)}  # held, not retried
    hooks.answer_once_open = HELD_BY_WORKER + 1
    worker = TidingsServer(data_dir, dict(env, **held), command=("worker",),
                           ready_path="/healthz", log_path=tmp_path / "worker.log")
    webhooks = TidingsServer(data_dir, env, command=("worker", "--jobs", "webhook.deliver"),
                             ready_path="/healthz", log_path=tmp_path / "webhooks.log")
    api = TidingsServer(data_dir, env, log_path=tmp_path / "api.log")
    for process in (worker, webhooks, api):
        await process.start_async()
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
            batch = await client.post("/v1/messages/batch", json={
                "from": "Acme", "body": "Hi {n}",
                "recipients": [{"to": f"+1202555{3000 + i}", "variables": {"n": str(i)}}
                               for i in range(200)]})
            assert batch.status_code == 200, batch.text
            await _wait_for(lambda: sum(b["data"]["status"] == "delivered"
                                        for b in hooks.bodies()) >= 200, "200 delivered")
            helper_metrics = httpx.get(f"{webhooks.url}/metrics").text
    finally:
        exits = [await p.stop_async() for p in (api, webhooks, worker)]
    assert exits == [0, 0, 0]
    events = [(b["data"]["message_id"], b["sequence"]) for b in hooks.bodies()]
    assert len(events) == len(set(events)) == 600, "each event once: queued, sent, delivered"
    assert _attempts(helper_metrics) > 0, "the webhook worker took a share"
    assert "connector_started" not in webhooks.log_text()  # it runs no carriers


async def test_on_sqlite_a_webhook_worker_beside_serve_takes_every_webhook_once(
        tmp_path: Path, hooks: HookServer) -> None:
    """``tidings serve`` with no webhook loops and a webhook worker on one SQLite file.

    The workers' poll is a minute: the webhooks can only go out promptly if serve's
    nudges reach the webhook worker over the shared socket directory.
    """
    data_dir = tmp_path / "data"
    env = tidings_env(data_dir, worker_poll_seconds=60, sandbox_receipt_delay_seconds=0.1)
    assert (await run_cli_async(env, "migrate")).returncode == 0
    made = await run_cli_async(env, "accounts", "create", "--name", "Acme", "--json",
                               "--webhook-url", hooks.url)
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {orjson.loads(made.stdout)['api_key']}"}
    api = TidingsServer(data_dir, dict(env, TIDINGS_WEBHOOK_LOOPS="0"),
                        log_path=tmp_path / "api.log")
    webhooks = TidingsServer(data_dir, env, command=("worker", "--jobs", "webhook.deliver"),
                             ready_path="/healthz", log_path=tmp_path / "webhooks.log")
    await api.start_async()  # it migrates; the webhook worker comes second
    await webhooks.start_async()
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
            await asyncio.sleep(1.5)  # both are past their first poll and bound
            sent = [await client.post("/v1/messages", json={
                "to": f"+1202555{4000 + i}", "from": "Acme", "body": f"Hi {i}"})
                for i in range(MESSAGES)]
            assert all(r.status_code == 201 for r in sent), [r.text for r in sent]
            await _wait_for(lambda: sum(b["data"]["status"] == "delivered"
                                        for b in hooks.bodies()) >= MESSAGES,
                            "every delivered webhook")
            # the worker counts an attempt once its answer is in, just after the hook
            # server has recorded the body: wait for the count to catch up
            await _wait_for(lambda: _attempts(httpx.get(f"{webhooks.url}/metrics").text)
                            >= 3 * MESSAGES, "the worker to count every attempt")
            api_metrics = httpx.get(f"{api.url}/metrics").text
            helper_metrics = httpx.get(f"{webhooks.url}/metrics").text
    finally:
        exits = [await p.stop_async() for p in (api, webhooks)]
    # uvicorn ends a single serve process by re-raising the SIGTERM it shut down on
    assert exits == [-signal.SIGTERM, 0], api.log_tail() + webhooks.log_tail()
    events = [(b["data"]["message_id"], b["sequence"]) for b in hooks.bodies()]
    assert len(events) == len(set(events)) == 3 * MESSAGES, "each event once"
    assert _attempts(helper_metrics) == 3 * MESSAGES
    assert _attempts(api_metrics) == 0, "serve, with no webhook loops, sent none"


def _attempts(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("tidings_webhook_attempts_total"))


def test_a_worker_for_some_jobs_refuses_unknown_kinds_and_zero_webhook_loops(
        tmp_path: Path) -> None:
    env = tidings_env(tmp_path / "data")
    unknown = run_cli(env, "worker", "--jobs", "carrier.pigeon")
    assert unknown.returncode == 2
    idle = run_cli(dict(env, TIDINGS_WEBHOOK_LOOPS="0"), "worker", "--jobs", "webhook.deliver")
    assert idle.returncode == 2
    assert "TIDINGS_WEBHOOK_LOOPS=0" in idle.stderr
    negative = run_cli(dict(env, TIDINGS_WEBHOOK_LOOPS="-1"), "worker")
    assert negative.returncode == 2
    assert "TIDINGS_WEBHOOK_LOOPS: Input should be greater than or equal to 0" in negative.stderr
    assert "-1" not in negative.stderr  # a setting's value may be a secret: never echoed
    for result in (unknown, idle, negative):
        assert "Traceback" not in result.stderr
