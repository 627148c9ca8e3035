"""``kill -9`` of Tidings mid-run on the SMPP path: nothing lost, next to nothing twice.

1,200 messages go from the batch API to ``tidings smsc-sim`` over 2 binds with a window
of 100 (the window at which Kannel repeats 6-7 per crash); the server is killed
while submits are in flight and restarted. Every message must end delivered (the
receipts of the first run included). A submit whose answer the crash cut off is
unknown: held after the restart until its receipt, which the SMSC kept for us, says
the SMSC took it, and sent again only if none comes in the window. The simulator's
count of repeated submits must stay below Kannel's 6-7 per crash; it is printed.
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
COUNT, BINDS, WINDOW = 1200, 2, 100
KANNEL_REPEATS = 6  # Kannel's fewest repeats per crash at a window of 100
HOLD_SECONDS = 20  # the resolution window (TIDINGS_SMPP_UNKNOWN_HOLD_SECONDS), shortened
KILL_AFTER = 250  # accepted submits: the second window-full


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


async def test_a_kill_mid_window_loses_nothing_and_repeats_fewer_than_kannel(
        tmp_path: Path) -> None:
    sim = Simulator(tmp_path / "sim.log")
    env = tidings_env(tmp_path / "data", connector_reload_seconds=0.5,
                      job_lease_seconds=2, worker_batch_size=200,
                      smpp_unknown_hold_seconds=HOLD_SECONDS)
    try:
        assert (await run_cli_async(env, "migrate")).returncode == 0
        account = await cli(env, "accounts", "create", "--name", "Acme")
        await cli(env, "connectors", "add", "smpp", "--name", "smsc", "--host", "127.0.0.1",
                  "--port", str(sim.port), "--system-id", "tidings", "--binds", str(BINDS),
                  "--window", str(WINDOW))
        await cli(env, "routes", "add", "--channel", "sms", "--connector", "smsc")
        server = TidingsServer(tmp_path / "data", env, log_path=tmp_path / "server.log")
        await server.start_async()
        headers = {"Authorization": f"Bearer {account['api_key']}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers,
                                     timeout=30) as api:
            batch = await api.post("/v1/messages/batch", json={
                "from": "Acme", "body": "crash {n}",
                "recipients": [{"to": f"+1202555{2000 + i:04d}", "variables": {"n": str(i)}}
                               for i in range(COUNT)]})
            assert batch.status_code == 200, batch.text
            deadline = time.monotonic() + 30
            # Polled without a pause: the kill lands within a few milliseconds of the
            # SMSC taking a window's worth, before our side has recorded the answers.
            while sim.stats()["submits_accepted"] < KILL_AFTER:
                assert time.monotonic() < deadline, "no submits reached the SMSC"
            server.kill()  # mid-run, with submits in flight
            before = sim.stats()["submits_accepted"]
            assert before < COUNT, "the run finished before the kill"
            await server.start_async()
            deadline = time.monotonic() + HOLD_SECONDS + 60
            while (done := await delivered(api)) < COUNT:
                assert time.monotonic() < deadline, f"only {done} of {COUNT} delivered"
                await asyncio.sleep(0.25)
        server.stop()
        stats = sim.stats()
        print(f"repeats after the kill: {stats['duplicates']} "
              f"(accepted before the kill: {before})")
        assert stats["duplicates"] < KANNEL_REPEATS, stats
        assert stats["submits_accepted"] == COUNT + stats["duplicates"]
    finally:
        print(json.dumps(sim.stop()))
