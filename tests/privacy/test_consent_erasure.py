"""Consent records under the privacy engine, on both databases: message retention
leaves a person's consent evidence readable (its key outlives their messages), and
erasing the person (DSR-3) deletes their consent events, destroys their keys (those of
the events too) and leaves nothing of them to find, no token included, whether or not
they ever had a message."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant, settle
from tests.consents.helpers import EVIDENCE, NUMBER, history, record, stored
from tests.privacy.test_requests import ask, show
from tests.privacy.test_retention import key_lives
from tidings.core.clock import FakeClock
from tidings.privacy.retention import apply_retention
from tidings.privacy.scan import Canary, scan
from tidings.runtime import Runtime

DAY = 86400.0


def in_force(shown: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["channel"], s["purpose"]) for s in shown["state"] if s["in_force"]}


async def test_retention_keeps_the_key_of_a_persons_consent_evidence(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": NUMBER, "from": "Acme", "body": "Hi"})
    assert sent.status_code == 201
    await record(client, acme)
    await settle(rt, clock, seconds=1)
    clock.advance(91 * DAY)
    report = await apply_retention(rt, tenant=acme.id)
    assert (report.messages, report.keys_destroyed) == (1, 0)
    shown = await history(client, acme)
    assert [e["evidence_ref"] for e in shown["events"]] == [EVIDENCE]
    assert in_force(shown) == {("sms", "marketing")}


async def test_erasure_ends_consent_and_shreds_its_evidence(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": NUMBER, "from": "Acme", "body": "CANARY-consent"})
    assert sent.status_code == 201
    await record(client, acme)
    await record(client, acme, channel="whatsapp", evidence_ref="CANARY-evidence-2")
    await settle(rt, clock, seconds=1)
    keys = {row.subject_key for row in await stored(rt)}
    request = await ask(client, acme, "erasure", number=NUMBER)
    await settle(rt, clock)
    assert (await show(client, acme, request["id"]))["status"] == "completed"
    shown = await history(client, acme)
    assert (shown["events"], in_force(shown)) == ([], set())
    for key_id in keys:
        assert not await key_lives(rt, key_id)
    report = await scan(rt, [Canary.number(NUMBER), Canary.text(EVIDENCE),
                             Canary.text("CANARY-evidence-2"), Canary.text("CANARY-consent")],
                        accounts=[acme.id])
    assert report.clean, report.findings


async def test_a_person_known_only_by_their_consent_is_erased_too(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await record(client, acme)
    request = await ask(client, acme, "erasure", number=NUMBER)
    await settle(rt, clock)
    done = await show(client, acme, request["id"])
    assert done["status"] == "completed"
    shown = await history(client, acme)
    assert (shown["events"], in_force(shown)) == ([], set())
    report = await scan(rt, [Canary.number(NUMBER), Canary.text(EVIDENCE)],
                        accounts=[acme.id])
    assert report.clean, report.findings
