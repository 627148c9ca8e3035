"""A trial's two refusals hold on every front door: REST with an idempotency key, batch
per recipient, the SMPP gateway (its statuses); and its allowance is exact when sends
race, because the count lives in one locked row written with the messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import smpplib.client
import smpplib.exceptions
from sqlalchemy import func, select

from tests.conftest import TEST_ACTOR, Tenant, make_tenant
from tests.signup.conftest import ALLOWANCE
from tests.smpp_gateway.test_gateway import bind, credential
from tidings.accounts.models import AccountStatus
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.signup.models import TrialUsage
from tidings.signup.verified_numbers import STARTS_PER_HOUR, do_confirm, do_start
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.storage.db import SYSTEM

VERIFIED = "+4915123456789"
STRANGER = "+4915198765432"


@pytest.fixture
async def trial(rt: Runtime) -> Tenant:
    """A trial account that has verified ``VERIFIED`` (through the service, code and all)."""
    made = await make_tenant(rt, "Trialist", status=AccountStatus.TRIAL)
    keys = await rt.vault.keys_for(made.id)
    async with rt.db.transaction(tenant=made.id) as session:
        row, code = await do_start(session, keys=keys, number=VERIFIED, actor=TEST_ACTOR,
                                   now=rt.clock.now())
    async with rt.db.transaction(tenant=made.id) as session:
        await do_confirm(session, keys=keys, row_id=row.id, code=code, actor=TEST_ACTOR,
                         now=rt.clock.now())
    return made


async def messages_of(rt: Runtime, tenant: str) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == tenant)) or 0)


def send(to: str) -> dict[str, str]:
    return {"to": to, "from": "Trialist", "body": "Hello"}


async def test_an_idempotent_send_holds_both_refusals_and_a_replay_is_not_counted_twice(
        client: httpx.AsyncClient, rt: Runtime, trial: Tenant) -> None:
    headers = {**trial.headers, "Idempotency-Key": "first"}
    sent = await client.post("/v1/messages", headers=headers, json=send(VERIFIED))
    again = await client.post("/v1/messages", headers=headers, json=send(VERIFIED))
    assert (sent.status_code, again.json()["id"]) == (201, sent.json()["id"])
    refused = await client.post("/v1/messages", json=send(STRANGER),
                                headers={**trial.headers, "Idempotency-Key": "second"})
    assert refused.json()["code"] == "trial_recipient_not_verified"
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        usage = await session.get(TrialUsage, trial.id)
    assert usage is not None
    assert usage.messages_sent == 1


async def test_an_idempotent_batch_counts_only_what_it_accepts(
        client: httpx.AsyncClient, rt: Runtime, trial: Tenant) -> None:
    answer = await client.post("/v1/messages/batch", json={
        "from": "Trialist", "body": "Hi",
        "recipients": [{"to": VERIFIED}] * (ALLOWANCE + 1) + [{"to": STRANGER}]},
        headers={**trial.headers, "Idempotency-Key": "batch"})
    codes = [(r["status"], (r.get("error") or {}).get("code")) for r in answer.json()["results"]]
    assert codes == [("accepted", None)] * ALLOWANCE + [
        ("rejected", "trial_allowance_used"), ("rejected", "trial_recipient_not_verified")]
    assert await messages_of(rt, trial.id) == ALLOWANCE


async def test_sends_that_race_never_take_more_than_the_allowance(
        client: httpx.AsyncClient, rt: Runtime, trial: Tenant) -> None:
    answers = await asyncio.gather(*[
        client.post("/v1/messages", headers=trial.headers, json=send(VERIFIED))
        for _ in range(ALLOWANCE * 3)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * ALLOWANCE + [403] * (ALLOWANCE * 2)
    assert {a.json()["code"] for a in answers if a.status_code == 403} == {
        "trial_allowance_used"}
    assert await messages_of(rt, trial.id) == ALLOWANCE


async def test_an_active_account_is_not_held_to_verified_numbers_or_an_allowance(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    for _ in range(ALLOWANCE + 1):
        sent = await client.post("/v1/messages", headers=acme.headers, json=send(STRANGER))
        assert sent.status_code == 201, sent.text
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.get(TrialUsage, acme.id) is None  # no count kept at all


@pytest.fixture
async def gateway(rt: Runtime) -> AsyncIterator[int]:
    rt.smpp_gateway = SmppGateway(rt)
    port = await rt.smpp_gateway.start("127.0.0.1", 0)
    yield port
    await rt.smpp_gateway.stop()
    rt.smpp_gateway = None


async def test_over_smpp_an_unverified_number_and_a_used_allowance_are_refused(
        rt: Runtime, clock: FakeClock, trial: Tenant, gateway: int) -> None:
    client, runner = await bind(gateway, *await credential(rt, trial, clock))
    stranger = await client.submit(destination_addr=STRANGER[1:], source_addr="Trialist")
    assert stranger.command_status == CommandStatus.ESME_RINVDSTADR
    for _ in range(ALLOWANCE):
        sent = await client.submit(destination_addr=VERIFIED[1:], source_addr="Trialist")
        assert sent.command_status == CommandStatus.ESME_ROK
    used = await client.submit(destination_addr=VERIFIED[1:], source_addr="Trialist")
    assert used.command_status == CommandStatus.ESME_RSUBMITFAIL
    assert await messages_of(rt, trial.id) == ALLOWANCE
    await client.link.unbind()
    await runner


def smpplib_submits(port: int, system_id: str, password: str,
                    destinations: list[str]) -> list[int]:
    """Each submit_sm_resp's command_status, from a blocking smpplib client (an ESME
    that is not ours) sending to each destination in turn."""
    statuses: list[int] = []
    client = smpplib.client.Client("127.0.0.1", port, timeout=10,
                                   allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: statuses.append(0))
    client.connect()
    try:
        client.bind_transceiver(system_id=system_id, password=password)
        for destination in destinations:
            client.send_message(source_addr_ton=5, source_addr="Trialist", dest_addr_ton=1,
                                dest_addr_npi=1, destination_addr=destination,
                                short_message=b"Hello")
            try:
                client.read_once()
            except smpplib.exceptions.PDUError as refused:
                statuses.append(int(refused.args[1]))
        client.unbind()
    finally:
        client.disconnect()
    return statuses


async def test_an_esme_of_another_make_gets_the_same_statuses(
        rt: Runtime, clock: FakeClock, trial: Tenant, gateway: int) -> None:
    system_id, password = await credential(rt, trial, clock)
    destinations = [STRANGER[1:]] + [VERIFIED[1:]] * (ALLOWANCE + 1)
    statuses = await asyncio.to_thread(smpplib_submits, gateway, system_id, password,
                                       destinations)
    assert statuses == ([CommandStatus.ESME_RINVDSTADR] + [CommandStatus.ESME_ROK] * ALLOWANCE
                        + [CommandStatus.ESME_RSUBMITFAIL])
    assert await messages_of(rt, trial.id) == ALLOWANCE


async def test_what_a_monthly_cap_refuses_a_trial_does_not_count(
        client: httpx.AsyncClient, rt: Runtime) -> None:
    parent = await make_tenant(rt, "Parent", status=AccountStatus.TRIAL)
    child = await make_tenant(rt, "Child", parent=parent.id, status=AccountStatus.TRIAL)
    keys = await rt.vault.keys_for(child.id)
    async with rt.db.transaction(tenant=child.id) as session:
        row, code = await do_start(session, keys=keys, number=VERIFIED, actor=TEST_ACTOR,
                                   now=rt.clock.now())
        await do_confirm(session, keys=keys, row_id=row.id, code=code, actor=TEST_ACTOR,
                         now=rt.clock.now())
    capped = await client.put(f"/v1/accounts/{child.id}/rights", headers=parent.headers,
                              json={"monthly_message_cap": 1})
    assert capped.status_code == 200, capped.text
    answer = await client.post("/v1/messages/batch", headers=child.headers, json={
        "from": "Child", "body": "Hi", "recipients": [{"to": VERIFIED}] * 2})
    codes = [(r.get("error") or {}).get("code") for r in answer.json()["results"]]
    assert codes == [None, "monthly_cap_reached"]
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        usage = await session.get(TrialUsage, child.id)
    assert usage is not None
    assert usage.messages_sent == 1


async def test_a_trial_cannot_pump_codes_to_numbers_of_its_choosing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, trial: Tenant) -> None:
    # The fixture's verification was the first start of the hour.
    for n in range(STARTS_PER_HOUR - 1):
        started = await client.post("/v1/verified-numbers", headers=trial.headers,
                                    json={"number": f"+491512345{n:04d}"})
        assert started.status_code == 202, started.text
    pumped = await client.post("/v1/verified-numbers", headers=trial.headers,
                               json={"number": "+4915123459999"})
    assert pumped.status_code == 429
    assert pumped.json()["code"] == "too_many_codes"
    clock.advance(3601)
    later = await client.post("/v1/verified-numbers", headers=trial.headers,
                              json={"number": "+4915123459999"})
    assert later.status_code == 202, later.text
