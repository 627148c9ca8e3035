"""The sub-processor register, on both databases: SUB-1 (an entry holds every field,
its status follows the clock), SUB-2 (a notice to every client at least thirty days
before the entry applies, with the mails as proof; an objection inside the window keeps
that client off it and opens a resolution; the public list at any instant), garbage
refused with nothing changed, and the operator's routes closed to a client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, assert_problem, make_tenant
from tests.mail.test_mail_jobs import mailbox
from tests.users.people import person
from tidings.accounts.models import AccountStatus
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.jobs.outbox import Job
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.subprocessors.models import Subprocessor, SubprocessorNotice
from tidings.subprocessors.register import NOTIFY_JOB
from tidings.subprocessors.tasks import tell_staff_of_objections

REGISTER = "/v1/operator/subprocessors"
DAY = 86400.0
REASON = "Our contract with +12025550173's employer forbids processing in that country."


def entry(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "legal_name": "Northwind Carrier Ltd", "countries": ["GB", "IE"],
        "purpose": "Carries SMS to mobile networks in the United Kingdom and Ireland.",
        "data_categories": ["user.contact.phone_number", "user.content.private"],
        "transfer_mechanism": "adequacy",
        "security_summary": "ISO 27001 certified; TLS on every link; access logged."}
    body.update(changes)
    return body


async def record(client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
                 **changes: Any) -> dict[str, Any]:
    made = await client.post(REGISTER, headers=ops, json=entry(**changes))
    assert made.status_code == 201, made.text
    return dict(made.json())


async def notify(client: httpx.AsyncClient, ops: dict[str, str], clock: FakeClock,  # noqa: F811
                 sub_id: str, *, days: float = 30) -> dict[str, Any]:
    effective = clock.now() + timedelta(days=days)
    told = await client.post(f"{REGISTER}/{sub_id}/notify", headers=ops,
                             json={"effective_at": effective.isoformat()})
    assert told.status_code == 200, told.text
    return dict(told.json())


async def counts(rt: Runtime) -> dict[str, int]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return {name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in (("entries", Subprocessor), ("notices", SubprocessorNotice),
                                    ("jobs", Job), ("audit", AuditEvent))}


async def notices(rt: Runtime) -> list[SubprocessorNotice]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(SubprocessorNotice)
                                           .order_by(SubprocessorNotice.tenant_id))).all())


# --------------------------------------------------------------------------- SUB-1


async def test_sub1_an_entry_holds_every_field_and_is_proposed_until_notified(
        client: httpx.AsyncClient, ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops, countries=["IE", "GB", "GB"])
    assert made["status"] == "proposed"
    for field, value in entry().items():
        assert made[field] == (sorted(set(value)) if field == "countries" else value), field
    assert (made["notified_at"], made["effective_at"], made["notices"]) == (None, None, 0)
    listed = (await client.get(REGISTER, headers=ops)).json()
    assert [e["id"] for e in listed] == [made["id"]]
    # Nobody was told: the public list and clients do not see it.
    public = (await client.get("/v1/public/subprocessors")).json()
    assert (public["current"], public["upcoming"], public["former"]) == ([], [], [])


async def test_sub1_garbage_is_refused_and_records_nothing(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str]) -> None:  # noqa: F811
    before = await counts(rt)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**entry(), "countries": ["XX"]}, "unknown_country"),
        ({**entry(), "countries": ["gb"]}, "validation_failed"),
        ({**entry(), "countries": []}, "validation_failed"),
        ({**entry(), "data_categories": ["system.operations"]}, "unknown_data_category"),
        ({**entry(), "data_categories": ["user.favourite_colour"]}, "unknown_data_category"),
        ({**entry(), "transfer_mechanism": "trust_us"}, "validation_failed"),
        ({**entry(), "legal_name": ""}, "validation_failed"),
        ({**entry(), "legal_name": "x" * 201}, "validation_failed"),
        ({**entry(), "purpose": "line\x00break"}, "invalid_text"),
        ({**entry(), "security_summary": "   "}, "invalid_text"),
        ({**entry(), "status": "active"}, "validation_failed"),
        ({k: v for k, v in entry().items() if k != "purpose"}, "validation_failed"),
        ({**entry(), "countries": "GB"}, "validation_failed"),
    ]
    for body, code in cases:
        refused = await client.post(REGISTER, headers=ops, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["code"] == code, (body, refused.json())
    assert (await client.post(REGISTER, headers=ops, content=b"{not json",
                              )).status_code == 400
    assert await counts(rt) == before


async def test_sub1_a_proposed_entry_changes_a_notified_one_does_not(
        client: httpx.AsyncClient, clock: FakeClock, ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    changed = await client.patch(f"{REGISTER}/{made['id']}", headers=ops,
                                 json={"countries": ["DE"]})
    assert (changed.status_code, changed.json()["countries"]) == (200, ["DE"])
    await notify(client, ops, clock, made["id"])
    refused = await client.patch(f"{REGISTER}/{made['id']}", headers=ops,
                                 json={"countries": ["US"]})
    assert_problem(refused, 409, "subprocessor_notified")
    shown = (await client.get(f"{REGISTER}/{made['id']}", headers=ops)).json()
    assert shown["countries"] == ["DE"]
    assert_problem(await client.get(f"{REGISTER}/sub_missing", headers=ops), 404,
                   "subprocessor_not_found")


# --------------------------------------------------------------------------- SUB-2


async def test_sub2_a_notice_shorter_than_thirty_days_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    before = await counts(rt)
    for days in (29.9999, 0, -1):
        effective = clock.now() + timedelta(days=days)
        refused = await client.post(f"{REGISTER}/{made['id']}/notify", headers=ops,
                                    json={"effective_at": effective.isoformat()})
        assert_problem(refused, 400, "notice_too_short")
    for body in ({}, {"effective_at": "next month"}, {"effective_at": "2027-01-01T00:00:00"},
                 {"effective_at": (clock.now() + timedelta(days=40)).isoformat(), "x": 1}):
        refused = await client.post(f"{REGISTER}/{made['id']}/notify", headers=ops, json=body)
        assert refused.status_code == 400, body
    assert await counts(rt) == before
    assert (await client.get(f"{REGISTER}/{made['id']}", headers=ops)).json()["status"] == \
        "proposed"


async def test_sub2_every_client_is_told_once_with_its_mails_as_proof(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    owner = await person(rt, acme.id, "owner")
    await make_tenant(rt, "Acme EU", parent=acme.id)  # the client's notice governs it
    await make_tenant(rt, "Gone", status=AccountStatus.TERMINATED)
    made = await record(client, ops)
    told = await notify(client, ops, clock, made["id"], days=45)
    assert told["status"] == "notified"
    assert told["effective_at"] == (clock.now() + timedelta(days=45)).isoformat().replace(
        "+00:00", "Z")
    await rt.worker_pool().drain()
    found = await notices(rt)
    assert sorted(n.tenant_id for n in found) == sorted([acme.id, globex.id])
    by_tenant = {n.tenant_id: n for n in found}
    assert len(by_tenant[acme.id].mail_ids) == 1
    assert by_tenant[acme.id].undeliverable is None
    assert (by_tenant[globex.id].mail_ids, by_tenant[globex.id].undeliverable) == (
        [], "no_active_owner")
    assert by_tenant[acme.id].effective_at == clock.now() + timedelta(days=45)
    [mail] = [m for m in await mailbox(rt) if m.kind == "legal"]
    assert (mail.id, mail.to) == (by_tenant[acme.id].mail_ids[0], owner.email)
    assert "Northwind Carrier Ltd" in mail.subject
    assert "object" in mail.body
    # The job again (a crash after the notices, before the job ended): nobody twice.
    async with rt.db.transaction(tenant=SYSTEM) as session:
        from tidings.jobs.outbox import enqueue_rows, job_row
        await enqueue_rows(session, [job_row(tenant=SYSTEM, kind=NOTIFY_JOB,
                                             ref_id=made["id"], now=clock.now())])
    await rt.worker_pool().drain()
    assert len(await notices(rt)) == 2
    assert len([m for m in await mailbox(rt) if m.kind == "legal"]) == 1
    # Told twice is refused.
    again = await client.post(f"{REGISTER}/{made['id']}/notify", headers=ops, json={
        "effective_at": (clock.now() + timedelta(days=60)).isoformat()})
    assert_problem(again, 409, "subprocessor_not_proposed")
    listed = (await client.get(f"{REGISTER}/{made['id']}/notices", headers=ops)).json()
    assert {n["account_id"] for n in listed} == {acme.id, globex.id}


async def test_sub2_a_client_told_late_gets_its_own_thirty_days(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"], days=30)
    clock.advance(2 * DAY)  # the workers were down for two days
    await rt.worker_pool().drain()
    [notice] = await notices(rt)
    assert notice.effective_at == clock.now() + timedelta(days=30)
    mine = (await client.get("/v1/subprocessors", headers=acme.headers)).json()
    assert mine[0]["notice"]["effective_at"].startswith(
        (clock.now() + timedelta(days=30)).date().isoformat())


async def test_sub2_an_objection_inside_the_window_is_recorded_and_opens_a_resolution(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    staff = await person(rt, None, "operator")
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    clock.advance(10 * DAY)
    objected = await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                 headers=acme.headers, json={"reason": REASON})
    assert objected.status_code == 200, objected.text
    notice = objected.json()["notice"]
    assert (notice["objection_reason"], notice["applies"], notice["resolution"]) == (
        REASON, False, None)
    # Clients and the public are not told that someone objected; the operator is.
    assert objected.json()["status"] == "notified"
    assert (await client.get(f"{REGISTER}/{made['id']}", headers=ops)).json()["status"] == \
        "objected"
    # The reason is the client's words: under its keys, never in clear.
    [row] = await notices(rt)
    assert row.objection_reason_enc is not None
    assert b"forbids" not in row.objection_reason_enc
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        [event] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "subprocessor.object"))).all()
    assert (event.table_name, event.row_id, event.fields) == (
        "subprocessor_notices", row.id, ["objection_reason"])
    assert event.actor_type == "api_key"
    # Staff are mailed of the resolution it opens, once.
    await tell_staff_of_objections(rt)
    await tell_staff_of_objections(rt)
    await rt.worker_pool().drain()
    [mail] = [m for m in await mailbox(rt) if m.to == staff.email]
    assert "Acme" in mail.subject
    assert made["id"] in mail.body
    shown = (await client.get(f"{REGISTER}/{made['id']}", headers=ops)).json()
    assert (shown["objections_open"], shown["objections"]) == (1, 1)
    # Twice, or once the window has closed: refused, nothing changed.
    assert_problem(await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                     headers=acme.headers, json={"reason": "again"}),
                   409, "already_objected")


async def test_sub2_no_objection_once_the_window_has_closed(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    clock.advance(30 * DAY)
    before = await counts(rt)
    assert_problem(await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                     headers=acme.headers, json={"reason": REASON}),
                   409, "objection_window_closed")
    assert await counts(rt) == before


async def test_sub2_objection_garbage_and_the_wrong_callers_are_refused(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    proposed = await record(client, ops, legal_name="Not told Ltd")
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    sub_account = await make_tenant(rt, "Acme EU", parent=acme.id)
    before = await counts(rt)
    url = f"/v1/subprocessors/{made['id']}/objection"
    for body in ({}, {"reason": ""}, {"reason": "x" * 2001}, {"reason": 42},
                 {"reason": "fine", "extra": True}):
        assert (await client.post(url, headers=acme.headers, json=body)).status_code == 400
    assert_problem(await client.post(url, headers=sub_account.headers,
                                     json={"reason": REASON}), 409, "controller_only")
    assert_problem(await client.post(f"/v1/subprocessors/{proposed['id']}/objection",
                                     headers=acme.headers, json={"reason": REASON}),
                   404, "subprocessor_not_found")
    assert (await client.post(url, json={"reason": REASON})).status_code == 401
    # A client's key is not the operator's.
    assert (await client.get(REGISTER, headers=acme.headers)).status_code in (401, 403)
    assert (await client.post(REGISTER, headers=acme.headers, json=entry())).status_code \
        in (401, 403)
    assert await counts(rt) == before


async def test_sub2_a_client_sees_only_its_own_notice(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    objected = await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                 headers=globex.headers, json={"reason": REASON})
    assert objected.status_code == 200
    [mine] = (await client.get("/v1/subprocessors", headers=acme.headers)).json()
    assert mine["notice"]["objected_at"] is None  # globex's objection is not acme's
    assert REASON not in str(mine)


async def test_sub2_resolutions_close_an_objection_once_and_tell_the_client(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    owner = await person(rt, acme.id, "owner")
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    url = f"{REGISTER}/{made['id']}/objections/{acme.id}/resolution"
    assert_problem(await client.post(url, headers=ops, json={"outcome": "upheld",
                                                             "note": "n"}), 409, "no_objection")
    await client.post(f"/v1/subprocessors/{made['id']}/objection", headers=acme.headers,
                      json={"reason": REASON})
    for body in ({"outcome": "maybe", "note": "n"}, {"outcome": "upheld"},
                 {"outcome": "upheld", "note": ""}):
        assert (await client.post(url, headers=ops, json=body)).status_code == 400
    resolved = await client.post(url, headers=ops, json={
        "outcome": "upheld", "note": "Acme's traffic stays on our own SMSC."})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["resolution"], resolved.json()["objection_reason"]) == (
        "upheld", REASON)
    assert_problem(await client.post(url, headers=ops, json={"outcome": "withdrawn",
                                                             "note": "n"}),
                   409, "objection_resolved")
    await rt.worker_pool().drain()
    mails = [m for m in await mailbox(rt) if m.to == owner.email and "upheld" in m.subject]
    assert len(mails) == 1
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        actions = (await session.scalars(select(AuditEvent.action).where(
            AuditEvent.table_name == "subprocessor_notices"))).all()
    assert sorted(actions) == ["subprocessor.object", "subprocessor.resolve"]


async def test_sub2_the_public_list_shows_the_state_at_any_instant(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)

    async def where() -> str:
        public = (await client.get("/v1/public/subprocessors")).json()
        places = [name for name in ("current", "upcoming", "former")
                  if any(e["id"] == made["id"] for e in public[name])]
        return "".join(places) or "nowhere"

    assert await where() == "nowhere"
    await notify(client, ops, clock, made["id"])
    assert await where() == "upcoming"
    clock.advance(30 * DAY - 1)
    assert await where() == "upcoming"
    clock.advance(1)
    assert await where() == "current"
    retired = await client.post(f"{REGISTER}/{made['id']}/retire", headers=ops)
    assert retired.json()["status"] == "retired"
    assert await where() == "former"
    assert_problem(await client.post(f"{REGISTER}/{made['id']}/retire", headers=ops),
                   409, "subprocessor_retired")


async def test_the_record_of_processing_lists_the_register_as_it_stands_for_the_account(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    in_use = await record(client, ops)
    coming = await record(client, ops, legal_name="Contoso Mail Inc", countries=["US"],
                          transfer_mechanism="sccs")
    await record(client, ops, legal_name="Never told GmbH")
    await notify(client, ops, clock, in_use["id"])
    await rt.worker_pool().drain()
    await client.post(f"/v1/subprocessors/{in_use['id']}/objection", headers=globex.headers,
                      json={"reason": REASON})
    clock.advance(31 * DAY)
    await notify(client, ops, clock, coming["id"])
    sub_account = await make_tenant(rt, "Globex EU", parent=globex.id)

    async def standing(tenant: Tenant) -> dict[str, str]:
        ropa = (await client.get("/v1/privacy/ropa", headers=tenant.headers)).json()
        return {s["legal_name"]: s["for_this_account"] for s in ropa["subprocessors"]}

    assert await standing(acme) == {"Northwind Carrier Ltd": "in_effect",
                                    "Contoso Mail Inc": "upcoming"}
    assert await standing(globex) == await standing(sub_account) == {
        "Northwind Carrier Ltd": "kept_off", "Contoso Mail Inc": "upcoming"}
    ropa = (await client.get("/v1/privacy/ropa", headers=acme.headers)).json()
    assert {(t["to"], tuple(t["countries"]), t["safeguard"]) for t in ropa["transfers"]} == {
        ("Northwind Carrier Ltd", ("GB", "IE"), "adequacy"),
        ("Contoso Mail Inc", ("US",), "sccs")}
    pdf = await client.get("/v1/privacy/ropa", headers={**acme.headers,
                                                        "Accept": "application/pdf"})
    assert pdf.content.startswith(b"%PDF")
