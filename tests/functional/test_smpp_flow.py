"""The SMPP story as an operator and a client live it, with real processes on loopback:
``tidings smsc-sim``, ``tidings serve``, the CLI, a webhook receiver and an SMPP client."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HookServer, hook_server
from tests.functional.server import TIDINGS, TidingsServer, free_port, run_cli_async, tidings_env
from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import CommandStatus, DeliverSm, Pdu, SubmitSm
from tidings.connectors.smpp.receipts import receipt_from_deliver_sm
from tidings.connectors.smpp.session import Session, SessionConfig
from tidings.webhooks.signing import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.slow
OUR_NUMBER = "+12025550199"


class Simulator:
    """``tidings smsc-sim`` in its own process, with its control API."""

    def __init__(self, log: Path, *options: str) -> None:
        self.port, self.control = free_port(), free_port()
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [TIDINGS, "smsc-sim", "--port", str(self.port), "--control-port",
             str(self.control), "--receipt-delay", "0.05", *options],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert f":{self.port}" in line, line

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.control}/stats").json()
        return data

    def stop(self) -> dict[str, Any]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self._log.close()
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smpp")


@pytest.fixture(scope="module")
def simulator(home: Path) -> Iterator[Simulator]:
    sim = Simulator(home / "sim.log")
    yield sim
    final = sim.stop()
    assert final["duplicates"] == 0


@pytest.fixture(scope="module")
def smpp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def env(home: Path, smpp_port: int) -> dict[str, str]:
    return tidings_env(home / "data", smpp_port=smpp_port, connector_reload_seconds=0.5,
                       routing_cache_seconds=0, sandbox_receipt_delay_seconds=0.05)


@pytest.fixture(scope="module")
def server(home: Path, env: dict[str, str], simulator: Simulator) -> Iterator[TidingsServer]:
    with TidingsServer(home / "data", env, log_path=home / "server.log") as running:
        yield running


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    async with hook_server() as receiver:
        yield receiver


async def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = await run_cli_async(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def test_an_operator_connects_an_smsc_and_clients_messages_come_back_delivered(
        env: dict[str, str], server: TidingsServer, simulator: Simulator,
        hooks: HookServer) -> None:
    account = await cli(env, "accounts", "create", "--name", "Acme", "--webhook-url", hooks.url)
    await cli(env, "connectors", "add", "smpp", "--name", "smsc", "--host", "127.0.0.1",
              "--port", str(simulator.port), "--system-id", "tidings", "--binds", "2",
              "--window", "50", "--tps", "500")
    await cli(env, "routes", "add", "--channel", "sms", "--connector", "smsc")
    await wait_for(lambda: _bound(simulator, 2), "two binds to the SMSC")
    headers = {"Authorization": f"Bearer {account['api_key']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as api:
        sent = await api.post("/v1/messages", json={"to": "+12025550173", "from": "Acme",
                                                    "body": "Hello over SMPP"})
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["id"]

        async def delivered() -> dict[str, Any] | None:
            read = (await api.get(f"/v1/messages/{message_id}")).json()
            return read if read["status"] == "delivered" else None

        message = await wait_for(delivered, "delivered from the SMSC's receipt")
        events = [(e["status"], e["source"], e["connector"]) for e in message["events"]]
        assert ("sent", "dispatcher", "smsc") in events
        assert ("delivered", "carrier", None) in events
        submitted = [s for s in httpx.get(
            f"http://127.0.0.1:{simulator.control}/submits").json()
            if s["text"] == "Hello over SMPP"]
        assert len(submitted) == 1

        async def webhook() -> dict[str, Any] | None:
            return next((r for r in hooks.requests if r["json"]["data"]["status"] ==
                         "delivered"), None)

        hook = await wait_for(webhook, "signed delivered webhook")
        verify(account["webhook_secret"], hook["raw"], hook["headers"][SIGNATURE_HEADER],
               now=int(time.time()))

        # The account claims its number: the code comes over SMPP, as a phone gets it.
        claimed = await api.post("/v1/numbers", json={"number": OUR_NUMBER})
        assert claimed.status_code == 202, claimed.text

        async def code_received() -> str | None:
            texts = [s["text"] for s in httpx.get(
                f"http://127.0.0.1:{simulator.control}/submits").json()
                if s["destination"].lstrip("+") == OUR_NUMBER.lstrip("+")]
            found = re.search(r"\b[0-9]{6}\b", texts[-1]) if texts else None
            return found.group() if found else None

        code = await wait_for(code_received, "the claim's code at the SMSC")
        verified = await api.post(f"/v1/numbers/claims/{claimed.json()['id']}/verify",
                                  json={"code": code})
        assert verified.status_code == 201, verified.text
        injected = httpx.post(f"http://127.0.0.1:{simulator.control}/mo",
                              json={"from": "+447911123456", "to": OUR_NUMBER,
                                    "body": "Reply from a phone"})
        assert injected.status_code == 202, injected.text

        async def inbound() -> dict[str, Any] | None:
            return next((r["json"] for r in hooks.requests
                         if r["json"]["type"] == "message.inbound"), None)

        event = await wait_for(inbound, "inbound webhook from the MO")
        assert event["data"]["from"] == "+447911123456"
        assert event["data"]["body"] == "Reply from a phone"


def _bound(simulator: Simulator, count: int) -> Any:
    async def check() -> bool:
        return bool(simulator.stats()["bound"] >= count)
    return check()


async def test_a_client_binds_to_tidings_submits_and_gets_its_receipt(
        env: dict[str, str], server: TidingsServer, smpp_port: int) -> None:
    account = await cli(env, "accounts", "create", "--name", "Smpp Client")
    credential = await cli(env, "smpp-credentials", "create", "--account", account["id"])
    assert re.fullmatch(r"[A-Za-z0-9]{8}", credential["password"])
    received: list[Pdu] = []

    async def on_request(link: Link, pdu: Pdu) -> None:
        received.append(pdu)
        link.respond(pdu)

    reader, writer = await asyncio.open_connection("127.0.0.1", smpp_port)
    link = Link(Session("client", SessionConfig()), reader, writer, on_request=on_request)
    runner = asyncio.create_task(link.run())
    try:
        link.bind("transceiver", credential["system_id"], credential["password"])
        assert await link.wait_bound(5.0) is not None
        response = await link.request(SubmitSm(
            sequence_number=0, source_addr="SmppCo", source_addr_ton=5,
            destination_addr="12025550173", dest_addr_ton=1, dest_addr_npi=1,
            short_message=b"Hello via Tidings SMPP", registered_delivery=1))
        assert response.command_status == CommandStatus.ESME_ROK
        message_id = getattr(response, "message_id", "")
        assert message_id.startswith("msg_")

        async def receipt() -> bool:
            return bool(received)

        await wait_for(receipt, "deliver_sm receipt on the client's bind")
        assert isinstance(received[0], DeliverSm)
        assert receipt_from_deliver_sm(received[0]) == (message_id, "delivered", None)
    finally:
        await link.unbind()
        await runner
