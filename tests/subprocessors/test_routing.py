"""SUB-2 on the send path: a connector whose company is in the register carries an
account's messages only once that company is in effect for the account. Messages go
through the API, the dispatcher, the SMPP connector and the SMSC simulator over TCP;
the sandbox is the route's backup, so a gated message still leaves, elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, assert_problem, make_tenant, settle
from tests.subprocessors.test_register import REASON, notify, record
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.connectors.smpp.simulator import SmscSimulator
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

DAY = 86400.0


@pytest.fixture
async def smsc(rt: Runtime) -> AsyncIterator[SmscSimulator]:
    sim = SmscSimulator()
    port = await sim.start()
    sim.test_port = port  # type: ignore[attr-defined]
    smpp = SmppConnector("smsc", SmppSettings(host="127.0.0.1", port=port,
                                              system_id="tidings"))
    await rt.connectors.replace(smpp)
    await smpp.start(rt.report_sink, rt.inbound_sink)
    for _ in range(200):
        if smpp.bound_links:
            break
        await asyncio.sleep(0.01)
    yield sim
    await smpp.stop()
    await sim.stop()


async def carrier_set_up(client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
                         port: int, sub_id: str | None, *, backup: bool = True) -> None:
    """As the operator would: the connector with its company, a route to it."""
    made = await client.post("/v1/operator/connectors", headers=ops, json={
        "kind": "smpp", "name": "smsc", "host": "127.0.0.1", "port": port,
        "system_id": "tidings", "subprocessor_id": sub_id})
    assert made.status_code == 201, made.text
    assert made.json()["subprocessor_id"] == sub_id
    targets = [{"connector": "smsc", "weight": 1}]
    if backup:
        targets.append({"connector": "sandbox", "weight": 0})
    routed = await client.post("/v1/operator/routes", headers=ops,
                               json={"channel": "sms", "connectors": targets})
    assert routed.status_code == 201, routed.text


async def send(client: httpx.AsyncClient, tenant: Tenant, to: str) -> str:
    sent = await client.post("/v1/messages", headers=tenant.headers,
                             json={"from": "Acme", "to": to, "body": "Hello"})
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


async def carried_by(rt: Runtime, message_id: str) -> tuple[str | None, str, str | None]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await session.scalar(select(Message).where(Message.id == message_id))
    assert row is not None
    return row.connector, row.status, row.error_code


def port_of(sim: SmscSimulator) -> int:
    return int(sim.test_port)  # type: ignore[attr-defined]


async def test_sub2_no_traffic_reaches_the_new_carrier_before_thirty_days(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        smsc: SmscSimulator, ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await carrier_set_up(client, ops, port_of(smsc), made["id"])
    proposed = await send(client, acme, "+12025551001")
    await settle(rt, clock)
    assert (await carried_by(rt, proposed))[0] == "sandbox"  # proposed: nobody told
    await notify(client, ops, clock, made["id"])
    await settle(rt, clock)
    clock.advance(29 * DAY + 23 * 3600)
    early = await send(client, acme, "+12025551002")
    await settle(rt, clock)
    assert (await carried_by(rt, early))[0] == "sandbox"
    assert smsc.stats()["submits"] == 0
    clock.advance(3600)
    due = await send(client, acme, "+12025551003")
    await settle(rt, clock)
    assert (await carried_by(rt, due))[0] == "smsc"
    assert smsc.stats()["submits"] == 1


async def test_sub2_an_objecting_client_and_its_sub_accounts_stay_off_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, smsc: SmscSimulator, ops: dict[str, str]) -> None:  # noqa: F811
    globex_eu = await make_tenant(rt, "Globex EU", parent=globex.id)
    made = await record(client, ops)
    await carrier_set_up(client, ops, port_of(smsc), made["id"])
    await notify(client, ops, clock, made["id"])
    await settle(rt, clock)
    clock.advance(5 * DAY)
    objected = await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                 headers=globex.headers, json={"reason": REASON})
    assert objected.status_code == 200, objected.text
    clock.advance(26 * DAY)
    sent = {name: await send(client, tenant, "+12025551010")
            for name, tenant in (("acme", acme), ("globex", globex), ("globex_eu", globex_eu))}
    await settle(rt, clock)
    carriers = {name: (await carried_by(rt, message_id))[0]
                for name, message_id in sent.items()}
    assert carriers == {"acme": "smsc", "globex": "sandbox", "globex_eu": "sandbox"}
    assert smsc.stats()["submits"] == 1
    # The objection withdrawn: the client's messages may go to it again.
    resolved = await client.post(
        f"/v1/operator/subprocessors/{made['id']}/objections/{globex.id}/resolution",
        headers=ops, json={"outcome": "withdrawn", "note": "Globex agreed after review."})
    assert resolved.status_code == 200
    later = await send(client, globex_eu, "+12025551011")
    await settle(rt, clock)
    assert (await carried_by(rt, later))[0] == "smsc"


async def test_a_message_only_a_gated_carrier_could_carry_fails_and_is_never_sent(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        smsc: SmscSimulator, ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await carrier_set_up(client, ops, port_of(smsc), made["id"], backup=False)
    await notify(client, ops, clock, made["id"])
    message_id = await send(client, acme, "+12025551020")
    await settle(rt, clock)
    _, status, error = await carried_by(rt, message_id)
    assert (status, error) == ("rejected", "subprocessor_not_effective")
    assert smsc.stats()["submits"] == 0
    # Retired once in use: refused again at once.
    clock.advance(31 * DAY)
    assert (await client.post(f"/v1/operator/subprocessors/{made['id']}/retire",
                              headers=ops)).status_code == 200
    retired = await send(client, acme, "+12025551021")
    await settle(rt, clock)
    assert (await carried_by(rt, retired))[1:] == ("rejected", "subprocessor_not_effective")
    assert smsc.stats()["submits"] == 0


async def test_linking_a_connector_refuses_an_unknown_or_retired_entry(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        smsc: SmscSimulator, ops: dict[str, str]) -> None:  # noqa: F811
    await carrier_set_up(client, ops, port_of(smsc), None)
    url = "/v1/operator/connectors/smsc/subprocessor"
    bodies: list[tuple[dict[str, Any], int, str]] = [
        ({"subprocessor_id": "sub_nothere"}, 400, "unknown_subprocessor"),
        ({"subprocessor_id": "not an id"}, 400, "validation_failed"),
        ({}, 400, "validation_failed"),
        ({"subprocessor_id": None, "x": 1}, 400, "validation_failed")]
    for body, status, code in bodies:
        assert_problem(await client.put(url, headers=ops, json=body), status, code)
    made = await record(client, ops)
    linked = await client.put(url, headers=ops, json={"subprocessor_id": made["id"]})
    assert linked.json()["subprocessor_id"] == made["id"]
    await client.post(f"/v1/operator/subprocessors/{made['id']}/retire", headers=ops)
    unlinked = await client.put(url, headers=ops, json={"subprocessor_id": None})
    assert unlinked.json()["subprocessor_id"] is None
    assert_problem(await client.put(url, headers=ops, json={"subprocessor_id": made["id"]}),
                   409, "subprocessor_retired")
    assert_problem(await client.put("/v1/operator/connectors/nope/subprocessor", headers=ops,
                                    json={"subprocessor_id": None}), 404,
                   "connector_not_found")
    shown = (await client.get(f"/v1/operator/subprocessors/{made['id']}", headers=ops)).json()
    assert shown["connectors"] == []
