"""Data subject requests (issue 16, item 2) on both databases: recording them, their
deadlines (DSR-7), erasure with and without a legal hold (DSR-3), restriction (DSR-4),
rectification (DSR-2), objection decided by a person, processor mode, and garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.test_operator_api import operator_key
from tests.conftest import Tenant, settle
from tests.mail.test_mail_jobs import mailbox
from tests.users.people import person
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.jobs.outbox import Job
from tidings.messaging.models import Message
from tidings.privacy.deadlines import due_at
from tidings.privacy.models import LegalHold, PrivacyBundle, PrivacyRequest, SubjectRestriction
from tidings.privacy.tasks import watch_deadlines
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

pytestmark = pytest.mark.pg_keystore

CANARY = "+12025550173"
CORRECTED = "+12025550174"
DAY = 86400.0


async def send(client: httpx.AsyncClient, tenant: Tenant, to: str, body: str = "Hi",
               ) -> httpx.Response:
    return await client.post("/v1/messages", headers=tenant.headers,
                             json={"to": to, "from": "Acme", "body": body})


async def ask(client: httpx.AsyncClient, tenant: Tenant, type_: str, number: str = CANARY,
              **more: Any) -> dict[str, Any]:
    response = await client.post("/v1/privacy/requests", headers=tenant.headers, json={
        "type": type_, "subject": {"number": number}, **more})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def show(client: httpx.AsyncClient, tenant: Tenant, request_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/privacy/requests/{request_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def count(rt: Runtime, model: Any) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --------------------------------------------------------------------------- DSR-7


@pytest.mark.parametrize(("received", "due"), [
    (datetime(2027, 1, 31, 9, 30, tzinfo=UTC), datetime(2027, 2, 28, 9, 30, tzinfo=UTC)),
    (datetime(2027, 3, 15, 9, 30, tzinfo=UTC), datetime(2027, 4, 15, 9, 30, tzinfo=UTC)),
    (datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),  # a leap year
])
def test_dsr_7_a_request_is_due_a_calendar_month_after_receipt(received: datetime,
                                                               due: datetime) -> None:
    assert due_at(received) == due


async def test_dsr_7_received_on_31_january_the_api_says_due_28_february(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    clock.advance((datetime(2027, 1, 31, 12, tzinfo=UTC) - clock.now()).total_seconds())
    made = await ask(client, acme, "objection")
    assert (made["type"], made["status"], made["overdue"]) == ("objection", "received", False)
    assert made["received_at"].startswith("2027-01-31T12:00")
    assert made["due_at"].startswith("2027-02-28T12:00")
    assert made["subject"] == {"number": CANARY}


async def test_dsr_7_extension_needs_a_reason_before_the_due_date_and_at_most_three_months(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    clock.advance((datetime(2027, 1, 31, tzinfo=UTC) - clock.now()).total_seconds())
    made = await ask(client, acme, "objection")
    url = f"/v1/privacy/requests/{made['id']}/extend"
    for body, code in (({"months": 1, "reason": "   "}, "reason_missing"),
                       ({"months": 3, "reason": "Complex"}, "validation_failed"),
                       ({"months": 1}, "validation_failed")):
        refused = await client.post(url, headers=acme.headers, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == code
    extended = await client.post(url, headers=acme.headers,
                                 json={"months": 1, "reason": "Many records to gather"})
    assert extended.status_code == 200, extended.text
    assert extended.json()["due_at"].startswith("2027-03-31")
    assert extended.json()["extension_reason"] == "Many records to gather"
    assert [n["kind"] for n in extended.json()["outcome"]["notices"]] == ["extension"]
    too_long = await client.post(url, headers=acme.headers,
                                 json={"months": 2, "reason": "More"})
    assert too_long.json()["code"] == "extension_too_long"
    more = await client.post(url, headers=acme.headers, json={"months": 1, "reason": "More"})
    assert more.json()["due_at"].startswith("2027-04-30")  # three months from receipt
    clock.advance(91 * DAY)
    late = await client.post(url, headers=acme.headers, json={"months": 1, "reason": "More"})
    assert late.status_code == 400
    assert late.json()["code"] == "extension_too_late"
    assert (await show(client, acme, made["id"]))["due_at"].startswith("2027-04-30")


async def test_dsr_7_an_alert_five_days_before_the_due_date_then_overdue(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    compliance = await person(rt, acme.id, "compliance", email="dpo@acme.example")
    await person(rt, acme.id, "developer", email="dev@acme.example")  # not told
    made = await ask(client, acme, "objection")
    clock.advance(20 * DAY)
    await watch_deadlines(rt)
    await rt.worker_pool().drain()
    assert await mailbox(rt) == []  # eleven days left or so: no alert yet
    clock.advance(7 * DAY)
    await watch_deadlines(rt)
    await watch_deadlines(rt)  # once per deadline
    await rt.worker_pool().drain()
    [alert] = await mailbox(rt)
    assert (alert.kind, alert.to) == ("privacy", compliance.email)
    assert made["id"] in alert.body
    assert CANARY not in alert.body + alert.subject
    clock.advance(5 * DAY)
    listed = await client.get("/v1/privacy/requests?open=true", headers=acme.headers)
    assert [(r["id"], r["overdue"]) for r in listed.json()] == [(made["id"], True)]


# --------------------------------------------------------------------------- DSR-3


async def test_dsr_3_an_erasure_request_erases_the_person_and_then_names_nobody(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    sent = (await send(client, acme, CANARY, "CANARY-body")).json()["id"]
    theirs = (await send(client, globex, CANARY, "kept")).json()["id"]
    made = await ask(client, acme, "erasure", note="Please forget me")
    again = await client.post("/v1/privacy/requests", headers=acme.headers, json={
        "type": "erasure", "subject": {"number": CANARY}})
    assert again.status_code == 409
    assert again.json()["code"] == "erasure_pending"
    await settle(rt, clock)
    done = await show(client, acme, made["id"])
    assert (done["status"], done["subject"], done["note"]) == ("completed", None, None)
    assert done["outcome"]["messages"] == 1
    assert done["outcome"]["subject_token"]
    message = (await client.get(f"/v1/messages/{sent}", headers=acme.headers)).json()
    assert (message["to"], message["body"]) == (None, None)
    other = (await client.get(f"/v1/messages/{theirs}", headers=globex.headers)).json()
    assert (other["to"], other["body"]) == (CANARY, "kept")  # another tenant's: untouched
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await session.get(PrivacyRequest, made["id"])
        assert row is not None
        assert (row.subject_enc, row.subject_index) == (None, None)
        actions = set((await session.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == acme.id))).all())
    assert {"erase", "dsr.erasure.fulfilled"} <= actions


async def test_dsr_3_legal_hold_blocks_erasure_and_touches_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "owner", email="owner@acme.example")
    sent = (await send(client, acme, CANARY, "kept for the claim")).json()["id"]
    hold = await client.post("/v1/privacy/holds", headers=acme.headers, json={
        "subject": {"number": CANARY}, "basis": "Litigation 2027-17"})
    assert hold.status_code == 201, hold.text
    twice = await client.post("/v1/privacy/holds", headers=acme.headers, json={
        "subject": {"number": CANARY}, "basis": "Again"})
    assert twice.status_code == 409
    made = await ask(client, acme, "erasure")
    await settle(rt, clock)
    blocked = await show(client, acme, made["id"])
    assert blocked["status"] == "blocked_legal_hold"
    assert blocked["outcome"]["hold_basis"] == "Litigation 2027-17"
    assert [n["kind"] for n in blocked["outcome"]["notices"]] == ["legal_hold"]
    message = (await client.get(f"/v1/messages/{sent}", headers=acme.headers)).json()
    assert message["body"] == "kept for the claim"
    assert [m.to for m in await mailbox(rt)] == [owner.email]
    released = await client.post(f"/v1/privacy/holds/{hold.json()['id']}/release",
                                 headers=acme.headers)
    assert released.status_code == 200
    assert released.json()["released_at"]
    retry = await ask(client, acme, "erasure")  # the blocked one is closed: a new one goes
    await settle(rt, clock)
    assert (await show(client, acme, retry["id"]))["status"] == "completed"


# --------------------------------------------------------------------------- DSR-4


async def test_dsr_4_a_restricted_person_gets_nothing_until_the_restriction_is_lifted(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    assert (await send(client, acme, CANARY)).status_code == 201
    later = await client.post("/v1/messages", headers=acme.headers, json={
        "to": CANARY, "from": "Acme", "body": "Tomorrow",
        "send_at": (clock.now() + timedelta(days=1)).isoformat()})
    assert later.status_code == 201, later.text
    made = await ask(client, acme, "restriction")
    await settle(rt, clock)
    clock.advance(DAY)
    await settle(rt, clock)
    withheld = (await client.get(f"/v1/messages/{later.json()['id']}",
                                 headers=acme.headers)).json()
    assert (withheld["status"], withheld["error_code"]) == ("failed", "subject_restricted")
    assert (await show(client, acme, made["id"]))["status"] == "completed"
    messages_before = await count(rt, Message)
    refused = await send(client, acme, CANARY)
    assert refused.status_code == 409
    assert refused.json()["code"] == "subject_restricted"
    batch = await client.post("/v1/messages/batch", headers=acme.headers, json={
        "from": "Acme", "body": "Hi", "recipients": [{"to": CANARY}, {"to": CORRECTED}]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert results[0]["error"]["code"] == "subject_restricted"
    assert await count(rt, Message) == messages_before + 1
    assert (await send(client, globex, CANARY)).status_code == 201  # another tenant's
    [restriction] = (await client.get("/v1/privacy/restrictions",
                                      headers=acme.headers)).json()
    lifted = await client.post(f"/v1/privacy/restrictions/{restriction['id']}/lift",
                               headers=acme.headers)
    assert lifted.status_code == 200
    assert lifted.json()["lifted_at"]
    notices = (await show(client, acme, made["id"]))["outcome"]["notices"]
    assert [n["kind"] for n in notices] == ["restriction_lifted"]
    assert (await send(client, acme, CANARY)).status_code == 201
    again = await client.post(f"/v1/privacy/restrictions/{restriction['id']}/lift",
                              headers=acme.headers)
    assert again.status_code == 409


# --------------------------------------------------------------------------- DSR-2


async def test_dsr_2_rectification_moves_the_person_to_the_correct_number(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = (await send(client, acme, CANARY)).json()["id"]
    bad = await client.post("/v1/privacy/requests", headers=acme.headers, json={
        "type": "rectification", "subject": {"number": CANARY},
        "rectify_to": {"number": "+1999"}})
    assert bad.status_code == 400, bad.text
    made = await ask(client, acme, "rectification", rectify_to={"number": CORRECTED})
    await settle(rt, clock)
    done = await show(client, acme, made["id"])
    assert (done["status"], done["subject"], done["outcome"]["messages"]) == (
        "completed", {"number": CORRECTED}, 1)
    assert (await client.get(f"/v1/messages/{sent}", headers=acme.headers)).json()["to"] \
        == CORRECTED
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        events = (await session.execute(select(AuditEvent.row_id, AuditEvent.fields).where(
            AuditEvent.action == "rectify"))).all()
    assert [tuple(e) for e in events] == [(sent, ["to"])]  # the field, never the values


# --------------------------------------------------------------------------- decided by a person


async def test_an_objection_waits_for_a_person_who_completes_or_rejects_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    made = await ask(client, acme, "objection")
    await settle(rt, clock)
    assert (await show(client, acme, made["id"]))["status"] == "received"
    done = await client.post(f"/v1/privacy/requests/{made['id']}/complete",
                             headers=acme.headers, json={"note": "Marketing stopped"})
    assert done.status_code == 200
    assert done.json()["status"] == "completed"
    closed = await client.post(f"/v1/privacy/requests/{made['id']}/reject",
                               headers=acme.headers, json={"reason": "Too late"})
    assert closed.status_code == 409
    assert closed.json()["code"] == "privacy_request_closed"
    access = await ask(client, acme, "access")
    by_hand = await client.post(f"/v1/privacy/requests/{access['id']}/complete",
                                headers=acme.headers, json={"note": "x"})
    assert by_hand.status_code == 409
    assert by_hand.json()["code"] == "privacy_request_automatic"


# --------------------------------------------------------------------------- processor mode


async def test_dsr_7_the_operator_forwards_a_request_to_the_controller_and_it_is_logged(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    ops = {"Authorization": f"Bearer {(await operator_key(rt, clock))[1]}"}
    admin = await person(rt, acme.id, "admin", email="admin@acme.example")
    forwarded = await client.post("/v1/operator/privacy/requests", headers=ops, json={
        "account_id": acme.id, "type": "access", "subject": {"email": "Canary@Example.TEST"}})
    assert forwarded.status_code == 201, forwarded.text
    assert forwarded.json()["source"] == "operator"
    assert forwarded.json()["subject"] == {"email": "Canary@example.test"}
    missing = await client.post("/v1/operator/privacy/requests", headers=ops, json={
        "account_id": "acc_nobody", "type": "access", "subject": {"number": CANARY}})
    assert missing.status_code == 404
    await settle(rt, clock)
    [told] = await mailbox(rt)
    assert (told.kind, told.to) == ("privacy", admin.email)
    assert forwarded.json()["id"] in told.body
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        [event] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.table_name == "privacy_requests", AuditEvent.action == "create"))).all()
    assert event.actor_type == "operator"


# --------------------------------------------------------------------------- garbage, tenancy


@pytest.mark.parametrize("body", [
    {}, {"type": "forget", "subject": {"number": CANARY}},
    {"type": "access"}, {"type": "access", "subject": {}},
    {"type": "access", "subject": {"number": CANARY, "email": "a@b.example"}},
    {"type": "access", "subject": {"number": "not a number"}},
    {"type": "access", "subject": {"email": "nobody"}},
    {"type": "access", "subject": {"number": "a@b.example"}},
    {"type": "access", "subject": {"number": CANARY}, "rectify_to": {"number": CORRECTED}},
    {"type": "rectification", "subject": {"number": CANARY}},
    {"type": "rectification", "subject": {"number": CANARY}, "rectify_to": {"number": CANARY}},
    {"type": "rectification", "subject": {"number": CANARY},
     "rectify_to": {"email": "a@b.example"}},
    {"type": "access", "subject": {"number": CANARY}, "note": "x" * 2001},
    {"type": "access", "subject": {"number": CANARY}, "extra": 1},
    {"type": ["access"], "subject": {"number": CANARY}},
])
async def test_garbage_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, Any]) -> None:
    response = await client.post("/v1/privacy/requests", headers=acme.headers, json=body)
    assert response.status_code == 400, response.text
    assert await count(rt, PrivacyRequest) == 0
    assert await count(rt, Job) == 0


async def test_another_accounts_request_hold_and_restriction_are_not_found(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    made = await ask(client, acme, "restriction")
    hold = (await client.post("/v1/privacy/holds", headers=acme.headers, json={
        "subject": {"number": CANARY}, "basis": "Claim"})).json()
    await settle(rt, clock)
    [restriction] = (await client.get("/v1/privacy/restrictions", headers=acme.headers)).json()
    for method, url in (("GET", f"/v1/privacy/requests/{made['id']}"),
                        ("POST", f"/v1/privacy/holds/{hold['id']}/release"),
                        ("POST", f"/v1/privacy/restrictions/{restriction['id']}/lift")):
        response = await client.request(method, url, headers=globex.headers)
        assert response.status_code == 404, (url, response.text)
    for url in ("/v1/privacy/requests", "/v1/privacy/holds", "/v1/privacy/restrictions"):
        assert (await client.get(url, headers=globex.headers)).json() == []
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(LegalHold).where(
            LegalHold.released_at.is_not(None))) == 0
        assert await session.scalar(select(func.count()).select_from(SubjectRestriction).where(
            SubjectRestriction.lifted_at.is_not(None))) == 0


async def test_a_request_about_nobody_is_answered_like_any_other(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await send(client, acme, CANARY)
    known, unknown = await ask(client, acme, "erasure"), await ask(client, acme, "erasure",
                                                                  number=CORRECTED)
    assert set(known) == set(unknown)
    assert (known["status"], unknown["status"]) == ("received", "received")
    await settle(rt, clock)
    assert (await show(client, acme, unknown["id"]))["status"] == "completed"


def test_the_deadline_of_a_request_received_at_a_months_end_keeps_its_time() -> None:
    received = datetime(2027, 5, 31, 23, 59, tzinfo=UTC)
    assert due_at(received) - received == timedelta(days=30)


# --------------------------------------------------------------------------- DSR-1, DSR-5


async def test_dsr_1_the_access_bundle_downloads_as_json_and_html_for_seven_days(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await send(client, acme, CANARY, "CANARY <b>body</b>")
    made = await ask(client, acme, "access")
    url = f"/v1/privacy/requests/{made['id']}/bundle"
    early = await client.get(url, headers=acme.headers)
    assert early.status_code == 409
    assert early.json()["code"] == "bundle_not_ready"
    await settle(rt, clock)
    done = await show(client, acme, made["id"])
    assert (done["status"], done["outcome"]["messages"]) == ("completed", 1)
    as_json = await client.get(url, headers=acme.headers)
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["cache-control"] == "no-store"
    bundle = as_json.json()
    assert [m["body"] for m in bundle["messages"]] == ["CANARY <b>body</b>"]
    assert bundle["processing_info"]
    as_html = await client.get(url, headers={**acme.headers, "Accept": "text/html"})
    assert as_html.headers["content-type"].startswith("text/html")
    assert "CANARY &lt;b&gt;body&lt;/b&gt;" in as_html.text
    schema = await client.get("/v1/privacy/schemas/access-v1.json")  # published: no key
    assert schema.status_code == 200
    assert schema.json()["$schema"]
    assert (await client.get("/v1/privacy/schemas/nothing.json")).status_code == 404
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        [event] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "dsr.access.fulfilled"))).all()
    assert (event.actor_type, event.row_id) == ("api_key", made["id"])
    clock.advance(7 * DAY)
    gone = await client.get(url, headers=acme.headers)
    assert gone.status_code == 410
    assert gone.json()["code"] == "bundle_expired"
    await watch_deadlines(rt)  # the chore deletes it
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(PrivacyBundle)) == 0
        bundle_events = (await session.execute(select(AuditEvent.action, AuditEvent.actor_type)
                                               .where(AuditEvent.table_name ==
                                                      "privacy_bundles"))).all()
    assert sorted(tuple(e) for e in bundle_events) == [("create", "api_key"),
                                                       ("delete", "system")]
    erasure = await ask(client, acme, "erasure")
    nothing = await client.get(f"/v1/privacy/requests/{erasure['id']}/bundle",
                               headers=acme.headers)
    assert nothing.status_code == 404
    assert nothing.json()["code"] == "bundle_not_found"


async def test_dsr_5_a_portability_bundle_imports_into_an_empty_account(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    for body in ("one", "two"):
        await send(client, acme, CANARY, body)
    made = await ask(client, acme, "portability")
    await settle(rt, clock)
    bundle = (await client.get(f"/v1/privacy/requests/{made['id']}/bundle",
                               headers=acme.headers)).json()
    imported = await client.post("/v1/privacy/imports", headers=globex.headers, json=bundle)
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"messages": 2}
    garbage = await client.post("/v1/privacy/imports", headers=globex.headers,
                                json={"format_version": 99})
    assert garbage.status_code == 400
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == globex.id)) == 2


async def test_dsr_3_erasure_reaches_batch_answers_kept_for_retries(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    headers = {**acme.headers, "Idempotency-Key": "batch-1"}
    body = {"from": "Acme", "body": "Hi", "recipients": [{"to": CANARY}, {"to": CORRECTED}]}
    first = await client.post("/v1/messages/batch", headers=headers, json=body)
    assert [r["to"] for r in first.json()["results"]] == [CANARY, CORRECTED]
    await ask(client, acme, "erasure")
    await settle(rt, clock)
    replayed = await client.post("/v1/messages/batch", headers=headers, json=body)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert [r["to"] for r in replayed.json()["results"]] == [None, CORRECTED]
    assert [r["message_id"] for r in replayed.json()["results"]] == [
        r["message_id"] for r in first.json()["results"]]
