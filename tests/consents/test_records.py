"""CON-1: a consent event holds who, what, how and the proof; the number, the address,
the evidence and the network are never in clear; the state is derived from the events;
garbage in any field is a 400 and writes nothing; another account's people are nobody;
every event is audited, with field names only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Tenant, assert_problem
from tests.consents.helpers import (
    EMAIL,
    EVIDENCE,
    NUMBER,
    SHA,
    audited,
    event_count,
    history,
    opt_in,
    record,
    stored,
)
from tidings.consents.models import EVIDENCE_FIELD, IP_PREFIX_FIELD, ConsentEvent
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.privacy.subjects import subject_index
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

OTHER = "+12025550174"
HOUR = 3600.0


async def test_con_1_an_event_holds_every_field_its_token_that_of_the_messages(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    made = await record(client, acme, ip="203.0.113.77")
    assert made["subject"] == {"number": NUMBER}
    assert {k: made[k] for k in ("channel", "purpose", "mechanism", "source", "evidence_ref",
                                 "text_version", "text_sha256", "ip_prefix")} == {
        "channel": "sms", "purpose": "marketing", "mechanism": "opt_in",
        "source": "web_form", "evidence_ref": EVIDENCE, "text_version": "v3",
        "text_sha256": SHA, "ip_prefix": "203.0.113.0/24"}
    assert made["captured_by"] == f"api_key:{acme.made.api_key_id}"
    assert made["id"].startswith("cev_")

    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": NUMBER, "from": "Acme", "body": "Hi"})
    assert sent.status_code == 201, sent.text
    [row] = await stored(rt)
    keys = await rt.vault.keys_for(acme.id)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        to_index = await session.scalar(select(Message.to_index))
    # The subject token is the person's messages' to_index: no second HMAC to match them.
    assert row.subject_index == subject_index(keys, NUMBER) == to_index
    assert (row.tenant_id, row.channel, row.purpose, row.mechanism, row.source) == (
        acme.id, "sms", "marketing", "opt_in", "web_form")
    assert (row.text_sha256, row.text_version) == (SHA, "v3")
    assert row.captured_at == row.recorded_at == clock.now()
    assert row.captured_by == f"api_key:{acme.made.api_key_id}"
    assert row.subject_key.startswith("sk_")
    # The proof is under the person's own key, not the account's.
    assert keys.subjects is not None
    [key] = (await keys.subjects.by_ids([row.subject_key])).values()
    assert key.decrypt(row.evidence_ref_enc, field=EVIDENCE_FIELD) == EVIDENCE
    assert key.decrypt(row.ip_prefix_enc, field=IP_PREFIX_FIELD) == "203.0.113.0/24"


async def test_con_1_no_number_address_evidence_or_ip_in_clear(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, database_url: str) -> None:
    await record(client, acme, ip="203.0.113.77")
    await record(client, acme, number=None, email=EMAIL, channel="email",
                 mechanism="soft_opt_in", ip="2001:db8:85a3:1234::7",
                 evidence_ref="order 5512 of ann@example.com")
    plaintexts = [b"2025550173", b"ann@example", b"example.com", b"form-7731",
                  b"checkbox ticked", b"order 5512", b"203.0.113", b"2001:db8"]
    rows = await stored(rt)
    assert len(rows) == 2
    dump = b"|".join(v if isinstance(v, bytes) else str(v).encode()
                     for row in rows for v in row)
    for plain in plaintexts:
        assert plain not in dump, plain
    if database_url.startswith("sqlite"):  # the file itself, its log included
        path = Path(database_url.split("///", 1)[1])
        blob = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"))
                        if p.exists())
        for plain in plaintexts:
            assert plain not in blob, plain
    shown = await history(client, acme, email=EMAIL)
    assert [e["ip_prefix"] for e in shown["events"]] == ["2001:db8:85a3::/48"]


async def test_con_1_the_state_is_the_latest_event_on_each_channel_and_purpose(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    assert await history(client, acme) == {"subject": {"number": NUMBER}, "events": [],
                                           "state": []}
    first = await record(client, acme)
    clock.advance(HOUR)
    await record(client, acme, mechanism="opt_out", source="keyword", evidence_ref="STOP sms")
    clock.advance(HOUR)
    await record(client, acme, channel="whatsapp", source="api")
    await record(client, acme, purpose="transactional", mechanism="opt_out",
                 source="keyword", evidence_ref="STOP ALL")
    # Captured before the opt-out, recorded after it: it does not undo the opt-out.
    late = await record(client, acme, captured_at=(clock.now() - timedelta(days=30))
                        .isoformat(), source="import")

    shown = await history(client, acme)
    assert [e["id"] for e in shown["events"]][:2] == [late["id"], first["id"]]
    state = {(s["channel"], s["purpose"]): (s["in_force"], s["mechanism"])
             for s in shown["state"]}
    assert state == {("sms", "marketing"): (False, "opt_out"),
                     ("sms", "transactional"): (False, "opt_out"),
                     ("whatsapp", "marketing"): (True, "opt_in")}
    sms = await history(client, acme, number=NUMBER, channel="sms")
    assert {e["channel"] for e in sms["events"]} == {"sms"}
    assert len(sms["events"]) == 4

    clock.advance(HOUR)
    await record(client, acme)  # opted in again
    again = {(s["channel"], s["purpose"]): s for s in (await history(client, acme))["state"]}
    assert again[("sms", "marketing")]["in_force"] is True
    assert again[("sms", "marketing")]["since"].startswith(clock.now().date().isoformat())


async def test_con_1_a_soft_opt_in_puts_email_marketing_in_force(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    made = await record(client, acme, number=None, email="Ann@Example.COM", channel="email",
                        mechanism="soft_opt_in")
    assert made["subject"] == {"email": "Ann@example.com"}  # the domain lower-cased
    shown = await history(client, acme, email="Ann@example.com")
    assert [(s["channel"], s["in_force"], s["mechanism"]) for s in shown["state"]] == [
        ("email", True, "soft_opt_in")]


def _without(*names: str, **more: Any) -> dict[str, Any]:
    body = {k: v for k, v in opt_in().items() if k not in names}
    body.update(more)
    return body


GARBAGE = [
    (_without("evidence_ref"), "validation_failed"),
    (_without(evidence_ref="   "), "validation_failed"),
    (_without(evidence_ref="x" * 501), "validation_failed"),
    (_without(evidence_ref="line one\nline two"), "validation_failed"),
    (_without(purpose="newsletter"), "validation_failed"),
    (_without(purpose=None), "validation_failed"),
    (_without(mechanism="maybe"), "validation_failed"),
    (_without(mechanism="erased"), "validation_failed"),
    (_without(source="purchased_list"), "validation_failed"),
    (_without(source="erasure"), "validation_failed"),
    (_without(channel="fax"), "validation_failed"),
    (_without("source"), "validation_failed"),
    (_without("number", email=EMAIL), "subject_channel_mismatch"),
    (_without(channel="email"), "subject_channel_mismatch"),
    (_without("number", email=EMAIL, channel="email", mechanism="soft_opt_in",
              purpose="transactional", evidence_ref="ok", source=["api"]), "validation_failed"),
    (_without(mechanism="soft_opt_in"), "soft_opt_in_email_only"),
    (_without(text_sha256=SHA.upper()), "validation_failed"),
    (_without(text_sha256=SHA[:-1]), "validation_failed"),
    (_without(text_sha256=SHA + "0"), "validation_failed"),
    (_without(text_version="v" * 41), "validation_failed"),
    (_without(captured_at="2026-01-02T00:00:00+00:00"), "captured_at_in_future"),
    (_without(captured_at="1999-12-31T23:59:59+00:00"), "captured_at_too_early"),
    (_without(captured_at="2025-06-01T10:00:00"), "validation_failed"),  # no time zone
    (_without(captured_at="last tuesday"), "validation_failed"),
    (_without(unknown="field"), "validation_failed"),
    (_without(email=EMAIL), "invalid_subject"),
    (_without("number"), "invalid_subject"),
    (_without(number="+1 202 555 017"), "invalid_phone_number"),
    (_without(number="12025550173"), "invalid_phone_number"),
    (_without(number="+1" + "2" * 40), "validation_failed"),
    (_without("number", email="ann@", channel="email"), "invalid_email_address"),
    (_without(ip="999.1.1.1"), "invalid_ip_address"),
    (_without(ip="not an address"), "invalid_ip_address"),
    (_without(number=12025550173), "validation_failed"),
]


@pytest.mark.parametrize(("body", "code"), GARBAGE)
async def test_garbage_in_any_field_is_a_400_and_writes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, Any],
        code: str) -> None:
    response = await client.post("/v1/consents", headers=acme.headers, json=body)
    assert_problem(response, 400, code)
    assert await event_count(rt) == 0
    assert await audited(rt, acme.id) == []


@pytest.mark.parametrize("body", ["[]", "not json", '{"number": "+12025550173"'])
async def test_a_body_that_is_not_an_object_is_a_400(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: str) -> None:
    response = await client.post("/v1/consents", content=body, headers={
        **acme.headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert await event_count(rt) == 0


@pytest.mark.parametrize(("params", "code"), [
    ({}, "invalid_subject"),
    ({"number": NUMBER, "email": EMAIL}, "invalid_subject"),
    ({"number": "+1 202 555 017"}, "invalid_phone_number"),
    ({"email": "nobody"}, "invalid_email_address"),
    ({"number": NUMBER, "channel": "fax"}, "validation_failed"),
    ({"number": NUMBER, "channel": "email"}, "subject_channel_mismatch"),
    ({"email": EMAIL, "channel": "sms"}, "subject_channel_mismatch"),
    ({"number": NUMBER, "purpose": "marketing"}, "unknown_query_parameter"),
    ({"number": "+" + "1" * 41}, "validation_failed"),
])
async def test_garbage_in_the_query_is_a_400(client: httpx.AsyncClient, acme: Tenant,
                                            params: dict[str, str], code: str) -> None:
    response = await client.get("/v1/consents", headers=acme.headers, params=params)
    assert_problem(response, 400, code)


async def test_another_accounts_consents_are_not_found(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    made = await record(client, acme)
    await record(client, globex, number=OTHER)
    theirs = await history(client, globex)
    assert (theirs["events"], theirs["state"]) == ([], [])
    mine = await history(client, acme)
    assert [e["id"] for e in mine["events"]] == [made["id"]]
    assert (await history(client, acme, number=OTHER))["events"] == []
    # Acting for Globex, the database itself shows none of Acme's rows (row-level
    # security on PostgreSQL; the query's own tenant filter everywhere).
    async with rt.db.transaction(tenant=globex.id, write=False) as session:
        seen = (await session.scalars(select(ConsentEvent.tenant_id))).all()
    if not rt.db.is_sqlite:
        assert set(seen) == {globex.id}


async def test_each_event_is_audited_with_its_field_names_never_their_values(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    first = await record(client, acme)
    second = await record(client, acme, mechanism="opt_out", text_version=None,
                          text_sha256=None, ip="198.51.100.4")
    events = await audited(rt, acme.id)
    assert [(e.action, e.row_id) for e in events] == [("create", first["id"]),
                                                      ("create", second["id"])]
    assert {(e.actor_type, e.actor_id) for e in events} == {("api_key",
                                                             acme.made.api_key_id)}
    assert events[0].fields == sorted(["subject", "channel", "purpose", "mechanism",
                                       "source", "evidence_ref", "captured_at",
                                       "text_version", "text_sha256"])
    assert "ip_prefix" in events[1].fields
    assert "text_sha256" not in events[1].fields
    for event in events:
        assert NUMBER not in str(event.fields)
        assert EVIDENCE not in str(event.fields)
