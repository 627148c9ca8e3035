"""``kill -9`` of Tidings mid-run on the SMPP path: nothing accepted is lost.

200 messages go from the batch API to ``tidings smsc-sim``; the server is killed
while submits are in flight and restarted. Every message must end delivered (the
receipts of the first run included). SMPP cannot tell whether the SMSC took a
submit whose answer the crash cut off, so those few are submitted again: the
simulator's count of repeated submits must stay within what was in flight (binds
times window), and nothing else may repeat.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.server import TidingsServer, run_cli_async, tidings_env
from tests.functional.test_smpp_flow import Simulator

pytestmark = pytest.mark.slow
COUNT, BINDS, WINDOW = 200, 2, 10


async def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = await run_cli_async(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def delivered(api: httpx.AsyncClient) -> int:
    count, cursor = 0, None
    while True:
        params: dict[str, Any] = {"status": "delivered", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/messages", params=params)).json()
        count += len(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return count


async def test_a_kill_mid_window_loses_nothing_and_repeats_only_what_was_in_flight(
        tmp_path: Path) -> None:
    sim = Simulator(tmp_path / "sim.log")
    env = tidings_env(tmp_path / "data", connector_reload_seconds=0.5,
                      job_lease_seconds=2, worker_batch_size=50)
    try:
        assert (await run_cli_async(env, "migrate")).returncode == 0
        account = await cli(env, "accounts", "create", "--name", "Acme")
        await cli(env, "connectors", "add", "smpp", "--name", "smsc", "--host", "127.0.0.1",
                  "--port", str(sim.port), "--system-id", "tidings", "--binds", str(BINDS),
                  "--window", str(WINDOW), "--tps", "150")
        await cli(env, "routes", "add", "--channel", "sms", "--connector", "smsc")
        server = TidingsServer(tmp_path / "data", env, log_path=tmp_path / "server.log")
        await server.start_async()
        headers = {"Authorization": f"Bearer {account['api_key']}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as api:
            batch = await api.post("/v1/messages/batch", json={
                "from": "Acme", "body": "crash {n}",
                "recipients": [{"to": f"+1202555{2000 + i:04d}", "variables": {"n": str(i)}}
                               for i in range(COUNT)]})
            assert batch.status_code == 200, batch.text
            deadline = time.monotonic() + 30
            while sim.stats()["submits_accepted"] < COUNT // 3:
                assert time.monotonic() < deadline, "no submits reached the SMSC"
                await asyncio.sleep(0.01)
            server.kill()  # mid-run, with submits in flight
            before = sim.stats()["submits_accepted"]
            assert before < COUNT, "the run finished before the kill"
            await server.start_async()
            deadline = time.monotonic() + 90
            while (done := await delivered(api)) < COUNT:
                assert time.monotonic() < deadline, f"only {done} of {COUNT} delivered"
                await asyncio.sleep(0.25)
        server.stop()
        stats = sim.stats()
        assert stats["duplicates"] <= BINDS * WINDOW, stats
        assert stats["submits_accepted"] == COUNT + stats["duplicates"]
    finally:
        print(json.dumps(sim.stop()))
