"""No personal data at rest in clear: not in the server's log, not in any file it writes.

A real server handles distinctive numbers and bodies (sends, a batch, a failed request,
a filtered listing, an inbound message, webhooks, a failing webhook endpoint); then
every byte it left behind is searched for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.functional.server import TidingsServer, run_cli_async, tidings_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RECIPIENT = "+12025550199"
INBOUND_SENDER = "+12025550188"
OWN_NUMBER = "+12025550142"  # the account's number, assigned by the operator
CLAIMED_NUMBER = "+12025550177"  # a claim sends a code to it
BODY = "SECRET-BODY-7731"
BATCH_NAME = "SECRET-NAME-5521"
INBOUND_BODY = "SECRET-INBOUND-4412"
REJECTED_NUMBER = "+1202555019"  # one digit short: refused, and must not be echoed to the log

SECRETS = [RECIPIENT, RECIPIENT.lstrip("+"), INBOUND_SENDER, INBOUND_SENDER.lstrip("+"),
           BODY, BATCH_NAME, INBOUND_BODY, REJECTED_NUMBER, OWN_NUMBER, OWN_NUMBER.lstrip("+"),
           CLAIMED_NUMBER, CLAIMED_NUMBER.lstrip("+")]
MAIN_DB_FILES = ("tidings.db", "tidings.db-wal", "tidings.db-shm", "tidings.db-journal")
WAIT_SECONDS = 60.0


@dataclass
class Hooks:
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    rec = Hooks()

    async def ok(request: web.Request) -> web.Response:
        rec.bodies.append(orjson.loads(await request.read()))
        return web.Response(text="ok")

    async def broken(request: web.Request) -> web.Response:
        await request.read()
        rec.failures += 1
        return web.Response(status=500, text="down for maintenance")

    app = web.Application()
    app.router.add_post("/hook", ok)
    app.router.add_post("/broken", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def find_secrets(path: Path, secrets: list[str]) -> list[str]:
    data = path.read_bytes()
    return [s for s in secrets if s.encode() in data]


def scan(data_dir: Path, log_path: Path) -> dict[str, list[str]]:
    """File -> the secrets found in it, in every file but the main database's (which
    ``scan_database`` searches, for everything too)."""
    found: dict[str, list[str]] = {}
    for path in [log_path, *sorted(p for p in data_dir.rglob("*") if p.is_file())]:
        if path.name in MAIN_DB_FILES:
            continue
        hits = find_secrets(path, SECRETS)
        if hits:
            found[str(path)] = hits
    return found


def scan_database(data_dir: Path) -> dict[str, list[str]]:
    found = {}
    for name in MAIN_DB_FILES:
        path = data_dir / name
        if path.exists():
            hits = find_secrets(path, SECRETS)
            if hits:
                found[name] = hits
    return found


def around(text: str, needle: str, lines: int = 40) -> str:
    """The log lines after the first ``needle``, skipping the database driver's chatter."""
    start = text.find(needle)
    tail = [line for line in text[start:].splitlines()
            if "executing " not in line and "operation " not in line]
    return "\n".join(tail[:lines])


async def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_SECONDS}s: {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
async def test_no_personal_data_in_logs_or_files(tmp_path: Path, hooks: Hooks,
                                                 log_level: str) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "server.log"
    env = tidings_env(data_dir, log_level=log_level, sandbox_receipt_delay_seconds=0.1,
                      webhook_max_age_seconds=3600)
    assert (await run_cli_async(env, "migrate")).returncode == 0
    made = await run_cli_async(env, "accounts", "create", "--name", "Acme", "--json",
                               "--webhook-url", f"{hooks.url}/hook")
    assert made.returncode == 0, made.stderr
    account = orjson.loads(made.stdout)
    server = TidingsServer(data_dir, env, log_path=log_path)
    await server.start_async()
    try:
        async with httpx.AsyncClient(
                base_url=server.url, timeout=30.0,
                headers={"Authorization": f"Bearer {account['api_key']}"}) as client:
            single = await client.post("/v1/messages", json={
                "to": RECIPIENT, "from": "Acme", "body": BODY})
            assert single.status_code == 201, single.text
            failing = await client.post("/v1/messages", json={
                "to": RECIPIENT, "from": "Acme", "body": f"{BODY} again",
                "status_callback": f"{hooks.url}/broken"})
            assert failing.status_code == 201, failing.text
            batch = await client.post("/v1/messages/batch", json={
                "from": "Acme", "body": "Hi {name}, " + BODY, "recipients": [
                    {"to": RECIPIENT, "variables": {"name": BATCH_NAME}},
                    {"to": REJECTED_NUMBER, "variables": {"name": BATCH_NAME}}]})
            assert batch.status_code == 200, batch.text
            assert (batch.json()["accepted"], batch.json()["rejected"]) == (1, 1)
            refused = await client.post("/v1/messages", json={
                "to": REJECTED_NUMBER, "from": "Acme", "body": BODY})
            assert refused.status_code == 400
            malformed = await client.post("/v1/messages", json={
                "to": RECIPIENT, "from": "Acme", "body": BODY, "unknown": BODY})
            assert malformed.status_code == 400

            listed = await client.get("/v1/messages", params={"to": RECIPIENT})
            assert listed.status_code == 200, listed.text
            assert len(listed.json()["data"]) == 3
            assert all(m["to"] == RECIPIENT for m in listed.json()["data"])
            read = await client.get(f"/v1/messages/{single.json()['id']}")
            assert read.json()["body"] == BODY

            assigned = await run_cli_async(env, "numbers", "assign", "--account",
                                           account["id"], "--number", OWN_NUMBER)
            assert assigned.returncode == 0, assigned.stderr
            claimed = await client.post("/v1/numbers", json={"number": CLAIMED_NUMBER})
            assert claimed.status_code == 202, claimed.text
            inbound = await client.post("/v1/sandbox/inbound", json={
                "from": INBOUND_SENDER, "to": OWN_NUMBER, "body": INBOUND_BODY})
            assert inbound.status_code == 201, inbound.text
            cli_inbound = await run_cli_async(env, "sandbox", "inbound", "--from",
                                              INBOUND_SENDER, "--to", OWN_NUMBER,
                                              "--body", INBOUND_BODY)
            assert cli_inbound.returncode == 0, cli_inbound.stderr
            assert not [s for s in SECRETS if s in cli_inbound.stdout + cli_inbound.stderr]

            async def all_delivered() -> bool:
                page = (await client.get("/v1/messages", params={"to": RECIPIENT})).json()
                statuses = {(b["data"]["message_id"], b["data"]["status"])
                            for b in hooks.bodies}
                inbound_hooks = [b for b in hooks.bodies if b["type"] == "message.inbound"]
                return (all(m["status"] == "delivered" for m in page["data"])
                        and all((m["id"], "delivered") in statuses for m in page["data"])
                        and len(inbound_hooks) == 2 and hooks.failures >= 1)

            await wait_until(all_delivered, "messages delivered and webhooks sent")
            # The webhooks themselves carry the data: the client's endpoint is its own.
            assert any(b["data"].get("body") == INBOUND_BODY for b in hooks.bodies)

        # While the server runs, the write-ahead log holds the latest pages.
        assert scan(data_dir, log_path) == {}
        assert scan_database(data_dir) == {}
    finally:
        await server.stop_async()

    log_text = server.log_text()
    assert '"path": "/v1/messages"' in log_text  # the access log was written, at this level
    assert "Traceback" not in log_text, around(log_text, "Traceback")
    assert scan(data_dir, log_path) == {}
    assert scan_database(data_dir) == {}
    # The search does see what is stored in clear: the account's name.
    assert any(find_secrets(data_dir / name, ["Acme"]) for name in MAIN_DB_FILES
               if (data_dir / name).exists())
