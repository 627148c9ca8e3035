"""The operator's breach register, on both databases: BRE-1 (no notice before every
field is set, a refusal names each missing one and changes nothing; versions appended),
BRE-2 (the 48-hour clock from awareness, the escalation at 36 hours and the page at 48,
once each; a notice per affected client with its mail as proof, the mail really sent),
BRE-3 (the impact per account matches a seeded fixture exactly), garbage refused, and
the routes closed to a client's key."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, update
from structlog.testing import capture_logs

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, assert_problem, make_tenant
from tests.mail.test_mail_jobs import mailbox
from tests.users.people import person, session_headers
from tidings.audit.models import AuditEvent
from tidings.breaches.api import operator_router
from tidings.breaches.impact import MESSAGES, USERS, Scope, SourceCount, estimate_impact
from tidings.breaches.models import Breach, BreachNotice, BreachVersion
from tidings.breaches.service import REQUIRED
from tidings.breaches.tasks import watch_clocks
from tidings.core.clock import FakeClock
from tidings.core.data_categories import EMAIL, PHONE, PRIVATE_CONTENT
from tidings.jobs.outbox import Job
from tidings.mail.service import MAIL_JOB
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users.models import User

BREACHES = "/v1/operator/breaches"
CANARY = "+12025550173"  # a person's number: never in the register or a notice
WINDOW_START = datetime(2025, 12, 20, tzinfo=UTC)
WINDOW_END = datetime(2025, 12, 30, tzinfo=UTC)
HOUR = 3600.0


def complete(tenants: list[str], **changes: Any) -> dict[str, Any]:
    """Every field a notice needs."""
    body: dict[str, Any] = {
        "nature": "confidentiality",
        "nature_description": "A database backup was readable from the internet for ten "
                              "days.",
        "categories_of_subjects": ["message recipients", "senders of inbound messages"],
        "approx_subjects": "100-500",
        "categories_of_records": [PHONE, PRIVATE_CONTENT],
        "approx_records": 1200,
        "likely_consequences": "Unsolicited messages to the numbers concerned.",
        "measures_taken": "Access removed; the backup's keys rotated.",
        "contact": "Data protection officer, dpo@tidings.example, +44 20 7946 0000",
        "scope": {"tenants": tenants, "window_start": WINDOW_START.isoformat(),
                  "window_end": WINDOW_END.isoformat(), "categories": [PHONE]},
    }
    body.update(changes)
    return body


def times(clock: FakeClock, *, aware_hours_ago: float = 0.0) -> dict[str, str]:
    aware = clock.now() - timedelta(hours=aware_hours_ago)
    return {"detected_at": (aware - timedelta(hours=2)).isoformat(),
            "aware_at": aware.isoformat()}


async def create(client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
                 body: dict[str, Any]) -> dict[str, Any]:
    made = await client.post(BREACHES, headers=ops, json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def counts(rt: Runtime) -> dict[str, int]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return {name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in (("breaches", Breach), ("versions", BreachVersion),
                                    ("notices", BreachNotice))}


async def mail_jobs(rt: Runtime) -> list[Job]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(Job).where(Job.kind == MAIL_JOB)
                                           .order_by(Job.id))).all())


# --------------------------------------------------------------------------- BRE-1


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    """``body`` lacking ``field`` (a scope's field: ``scope.<name>``)."""
    body = copy.deepcopy(body)
    if field == "approx_subjects_reason":  # needed only for an unknown number
        body["approx_subjects"] = "unknown"
    elif field.startswith("scope."):
        body["scope"].pop(field.removeprefix("scope."))
    else:
        body.pop(field)
    return body


async def test_bre1_each_missing_field_is_refused_by_name_and_nothing_changes(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    await person(rt, acme.id, "owner")
    for field in REQUIRED:
        made = await create(client, ops, {**times(clock), **without(complete([acme.id]),
                                                                    field)})
        assert made["missing"] == [field]
        before = await counts(rt)
        refused = await client.post(f"{BREACHES}/{made['id']}/notify", headers=ops)
        assert_problem(refused, 400, "breach_incomplete")
        assert refused.json()["missing"] == [field]
        assert field in refused.json()["detail"]
        assert await counts(rt) == before
        after = (await client.get(f"{BREACHES}/{made['id']}", headers=ops)).json()
        assert (after["status"], after["notices"], after["notified_at"]) == ("open", [], None)
    assert await mail_jobs(rt) == []
    # Several missing: each named, in order.
    bare = await create(client, ops, {**times(clock), "nature": "integrity"})
    refused = await client.post(f"{BREACHES}/{bare['id']}/notify", headers=ops)
    assert refused.json()["missing"] == [f for f in REQUIRED
                                         if f not in ("nature", "approx_subjects_reason")]


async def test_bre1_updates_append_versions_and_nothing_is_rewritten(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await create(client, ops, {**times(clock), "nature": "availability",
                                      "contact": "dpo@tidings.example"})
    assert (made["status"], made["current_version"], len(made["versions"])) == ("open", 1, 1)
    clock.advance(600)
    updated = await client.post(f"{BREACHES}/{made['id']}/versions", headers=ops, json={
        "nature": "confidentiality", "approx_subjects": 250, "contact": None,
        "scope": {"tenants": [acme.id, acme.id]}})
    assert updated.status_code == 201, updated.text
    shown = updated.json()
    assert shown["current_version"] == 2
    first, second = shown["versions"]
    assert (first["version"], first["nature"], first["contact"], first["approx_subjects"]) == (
        1, "availability", "dpo@tidings.example", None)
    assert (second["nature"], second["contact"], second["approx_subjects"]) == (
        "confidentiality", None, "250")
    assert second["scope"]["tenants"] == [acme.id]  # once
    assert second["created_at"] > first["created_at"]
    assert shown["current"] == second
    before = await counts(rt)
    for body, code in (({}, "breach_version_empty"),
                       ({"approx_subjects": "many"}, "invalid_approximation")):
        refused = await client.post(f"{BREACHES}/{made['id']}/versions", headers=ops,
                                    json=body)
        assert_problem(refused, 400, code)
    assert await counts(rt) == before
    closed = await client.post(f"{BREACHES}/{made['id']}/close", headers=ops,
                               json={"reason": "No personal data was reached after all."})
    assert closed.json()["status"] == "closed"
    late = await client.post(f"{BREACHES}/{made['id']}/versions", headers=ops,
                             json={"nature": "integrity"})
    assert_problem(late, 409, "breach_closed")
    assert_problem(await client.post(f"{BREACHES}/{made['id']}/close", headers=ops,
                                     json={"reason": "again"}), 409, "breach_closed")
    # Closed, and kept with every version.
    listed = (await client.get(BREACHES, headers=ops, params={"status": "closed"})).json()
    assert [(b["id"], b["current_version"]) for b in listed] == [(made["id"], 2)]
    assert await counts(rt) == before


# --------------------------------------------------------------------------- BRE-2


async def clock_of(client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
                   breach_id: str) -> tuple[int | None, bool]:
    [found] = [b for b in (await client.get(BREACHES, headers=ops)).json()
               if b["id"] == breach_id]
    return found["due_in"], found["overdue"]


async def test_bre2_the_clock_escalates_at_36_hours_and_pages_at_48_once_each(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    staff = [await person(rt, None, "operator", email=f"ops{n}@tidings.example")
             for n in (1, 2)]
    await person(rt, acme.id, "owner")  # a client's user: never a staff mail
    aware = clock.now()
    made = await create(client, ops, {**times(clock), "nature": "confidentiality"})
    assert datetime.fromisoformat(made["due_at"]) == aware + timedelta(hours=48)
    assert await clock_of(client, ops, made["id"]) == (48 * 3600, False)

    clock.advance(36 * HOUR - 1)
    await watch_clocks(rt)
    assert await mail_jobs(rt) == []
    clock.advance(1)  # t + 36:00
    with capture_logs() as logged:
        await watch_clocks(rt)
        await watch_clocks(rt)  # a second round: still one escalation
    jobs = await mail_jobs(rt)
    assert sorted(j.payload["to_user_id"] for j in jobs) == sorted(p.user_id for p in staff)
    assert {j.payload["kind"] for j in jobs} == {"breach"}
    assert [e["event"] for e in logged if e["event"].startswith("breach_")] == [
        "breach_escalated"]
    shown = (await client.get(f"{BREACHES}/{made['id']}", headers=ops)).json()
    assert datetime.fromisoformat(shown["escalated_at"]) == aware + timedelta(hours=36)
    assert shown["overdue_at"] is None

    clock.advance(12 * HOUR - 60)  # t + 47:59
    assert await clock_of(client, ops, made["id"]) == (60, False)
    await watch_clocks(rt)
    assert len(await mail_jobs(rt)) == 2
    clock.advance(60)  # t + 48:00 exactly, not notified: overdue
    assert await clock_of(client, ops, made["id"]) == (0, True)
    with capture_logs() as logged:
        await watch_clocks(rt)
        await watch_clocks(rt)
    pages = [e for e in logged if e["event"] == "breach_overdue"]
    assert len(pages) == 1
    assert pages[0]["log_level"] == "error"
    assert pages[0]["breach_id"] == made["id"]
    assert set(pages[0]) == {"event", "log_level", "breach_id", "staff_mailed"}  # no data
    assert len(await mail_jobs(rt)) == 4  # one escalation and one page to each of two
    overdue = (await client.get(BREACHES, headers=ops, params={"overdue": "true"})).json()
    assert [b["id"] for b in overdue] == [made["id"]]
    assert datetime.fromisoformat(overdue[0]["overdue_at"]) == aware + timedelta(hours=48)
    assert (await client.get(BREACHES, headers=ops, params={"overdue": "false"})).json() == []
    await rt.worker_pool().drain()
    kept = await mailbox(rt)
    assert sorted(m.to for m in kept) == sorted([p.email for p in staff] * 2)
    assert sum("OVERDUE" in m.subject for m in kept) == 2
    assert all(made["id"] in m.body and m.kind == "breach" for m in kept)


async def test_a_breach_recorded_past_its_48_hours_is_paged_without_an_escalation(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    await person(rt, None, "operator", email="ops@tidings.example")
    made = await create(client, ops, {**times(clock, aware_hours_ago=50)})
    assert (await clock_of(client, ops, made["id"]))[1] is True
    with capture_logs() as logged:
        await watch_clocks(rt)
    assert [e["event"] for e in logged if e["event"].startswith("breach_")] == [
        "breach_overdue"]
    assert len(await mail_jobs(rt)) == 1


async def test_a_notified_breach_neither_escalates_nor_pages(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    await person(rt, None, "operator", email="ops@tidings.example")
    made = await create(client, ops, {**times(clock), **complete([acme.id])})
    notified = await client.post(f"{BREACHES}/{made['id']}/notify", headers=ops)
    assert notified.status_code == 200, notified.text
    assert (notified.json()["due_in"], notified.json()["overdue"]) == (None, False)
    clock.advance(49 * HOUR)
    with capture_logs() as logged:
        await watch_clocks(rt)
    assert [e for e in logged if e["event"].startswith("breach_")] == []
    assert await clock_of(client, ops, made["id"]) == (None, False)


async def test_bre2_a_notice_per_affected_client_with_its_mail_as_proof(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    branch = await make_tenant(rt, "Acme Branch", parent=acme.id)
    ownerless = await make_tenant(rt, "Initech")
    acme_owners = [await person(rt, acme.id, "owner", email=f"owner{n}@acme.example")
                   for n in (1, 2)]
    globex_owner = await person(rt, globex.id, "owner", email="owner@globex.example")
    await person(rt, acme.id, "admin", email="admin@acme.example")  # not an owner
    await person(rt, branch.id, "owner", email="owner@branch.example")
    made = await create(client, ops, {**times(clock, aware_hours_ago=3),
                                      **complete([branch.id, globex.id, ownerless.id,
                                                  acme.id])})
    clock.advance(60)
    response = await client.post(f"{BREACHES}/{made['id']}/notify", headers=ops)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["status"], shown["notified_version"]) == ("notified", 1)
    notices = {n["tenant_id"]: n for n in shown["notices"]}
    # One per client, the controller: Acme's branch is Acme's, noticed to Acme's owners.
    assert len(shown["notices"]) == 3
    assert set(notices) == {acme.id, globex.id, ownerless.id}
    assert notices[acme.id]["accounts"] == [branch.id, acme.id]
    assert len(notices[acme.id]["mail_ids"]) == 2
    assert notices[acme.id]["mail_id"] == notices[acme.id]["mail_ids"][0]
    assert len(notices[globex.id]["mail_ids"]) == 1
    assert (notices[ownerless.id]["mail_id"], notices[ownerless.id]["undeliverable"]) == (
        None, "no_active_owner")
    assert await rt.worker_pool().drain() == 3
    kept = {m.id: m for m in await mailbox(rt)}
    for notice, owners in ((notices[acme.id], acme_owners),
                           (notices[globex.id], [globex_owner])):
        mails = [kept[mail_id] for mail_id in notice["mail_ids"]]  # really sent
        assert sorted(m.to for m in mails) == sorted(o.email for o in owners)
        for mail in mails:
            assert (mail.kind, mail.account_id) == ("breach", notice["tenant_id"])
            for required in (made["id"], "confidentiality", "100-500", PHONE, "1200",
                             "Access removed", "dpo@tidings.example", "Unsolicited",
                             "message recipients"):
                assert required in mail.body, required
            assert CANARY not in mail.body
    # The client's trail shows the mail, by the operator who notified.
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        actions = (await session.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == acme.id, AuditEvent.action == "breach.notify"))).all()
    assert len(actions) == 2
    # Once per version: again only after an update.
    assert_problem(await client.post(f"{BREACHES}/{made['id']}/notify", headers=ops), 409,
                   "breach_already_notified")
    updated = await client.post(f"{BREACHES}/{made['id']}/versions", headers=ops,
                                json={"approx_subjects": 320,
                                      "scope": {**complete([globex.id])["scope"]}})
    assert updated.json()["status"] == "notified"
    again = await client.post(f"{BREACHES}/{made['id']}/notify", headers=ops)
    assert again.status_code == 200, again.text
    latest = [n for n in again.json()["notices"] if n["version"] == 2]
    assert [n["tenant_id"] for n in latest] == [globex.id]
    assert len(again.json()["notices"]) == 4  # the first notices are kept


# --------------------------------------------------------------------------- BRE-3


def message(tenant: str, n: int, at: datetime, *, person_index: str, direction: str = "outbound",
            channel: str = "sms") -> dict[str, Any]:
    inbound = direction == "inbound"
    return {"id": f"msg_{tenant[-6:]}{n:020d}", "tenant_id": tenant, "direction": direction,
            "channel": channel, "status": "delivered", "to_enc": b"x",
            "to_index": "own-number" if inbound else person_index, "from_enc": b"x",
            "from_index": person_index if inbound else None, "body_enc": b"x",
            "encoding": "GSM-7", "num_segments": 1, "event_count": 1, "created_at": at,
            "updated_at": at}


async def seed(rt: Runtime, acme: str, branch: str, globex: str) -> None:
    """The fixture: messages in and around the window [20 Dec, 30 Dec)."""
    start, end, second = WINDOW_START, WINDOW_END, timedelta(microseconds=1)
    hour = timedelta(hours=1)
    rows = [
        # Acme: three people by SMS (one of them twice), one of whom wrote back, and
        # one by e-mail; one message anonymised; two just outside the window.
        message(acme, 1, start, person_index="ann"),  # the start is included
        message(acme, 2, start + hour, person_index="ann"),
        message(acme, 3, start + 2 * hour, person_index="bob"),
        message(acme, 4, start + 3 * hour, person_index="ann", direction="inbound"),
        message(acme, 5, start + 4 * hour, person_index="cy", direction="inbound"),
        message(acme, 6, start + 5 * hour, person_index="dee@example.com", channel="email"),
        message(acme, 7, start + 6 * hour, person_index=""),  # anonymised: no person left
        message(acme, 8, end, person_index="eve"),  # the end is not
        message(acme, 9, start - second, person_index="fay"),
        # Acme's branch: Ann again, a person of its own.
        message(branch, 1, start + hour, person_index="ann"),
        # Globex: two people, the last a microsecond before the end.
        *[message(globex, n, start + n * hour, person_index="gus") for n in range(1, 4)],
        message(globex, 4, end - second, person_index="hal", channel="whatsapp"),
        message(globex, 5, end + hour, person_index="ivy"),
    ]
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await session.execute(insert(Message), rows)


async def test_bre3_the_impact_per_account_matches_the_seeded_fixture(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    branch = await make_tenant(rt, "Acme Branch", parent=acme.id)
    await seed(rt, acme.id, branch.id, globex.id)
    owner = await person(rt, acme.id, "owner", email="owner@acme.example")
    late = await person(rt, acme.id, "admin", email="late@acme.example")
    async with rt.db.transaction(tenant=SYSTEM) as session:  # a user since the window
        await session.execute(update(User).where(User.id == owner.user_id).values(
            created_at=WINDOW_START))
        await session.execute(update(User).where(User.id == late.user_id).values(
            created_at=WINDOW_END))  # created once the window was over: not counted

    def scope(*categories: str) -> Scope:
        return Scope(tenants=(acme.id, globex.id), window_start=WINDOW_START,
                     window_end=WINDOW_END, categories=frozenset(categories))

    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        phones = await estimate_impact(session, scope(PHONE))
        everything = await estimate_impact(session, scope(PRIVATE_CONTENT, EMAIL))
    assert [(i.tenant_id, i.controller_id, i.subjects, i.records) for i in phones] == [
        (acme.id, acme.id, 3, 6), (branch.id, acme.id, 1, 1), (globex.id, globex.id, 2, 4)]
    # Every channel, and e-mail addresses: Acme's e-mail and its owner (a user) too.
    assert [(i.tenant_id, i.sources) for i in everything] == [
        (acme.id, {MESSAGES: SourceCount(subjects=4, records=7),
                   USERS: SourceCount(subjects=1, records=1)}),
        (branch.id, {MESSAGES: SourceCount(subjects=1, records=1)}),
        (globex.id, {MESSAGES: SourceCount(subjects=2, records=4)})]
    assert [(i.subjects, i.records) for i in everything] == [(5, 8), (1, 1), (2, 4)]

    made = await create(client, ops, {**times(clock), **complete([acme.id, globex.id])})
    estimated = await client.post(f"{BREACHES}/{made['id']}/estimate", headers=ops)
    assert estimated.status_code == 200, estimated.text
    body = estimated.json()
    assert (body["subjects"], body["records"], body["version"]) == (6, 11, 1)
    assert [(a["tenant_id"], a["subjects"], a["records"]) for a in body["accounts"]] == [
        (acme.id, 3, 6), (branch.id, 1, 1), (globex.id, 2, 4)]
    # The notices state each client's share.
    notified = (await client.post(f"{BREACHES}/{made['id']}/notify", headers=ops)).json()
    assert [(n["tenant_id"], n["subjects"], n["records"]) for n in notified["notices"]] == [
        (acme.id, 4, 7), (globex.id, 2, 4)]


async def test_an_estimate_needs_a_whole_scope(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await create(client, ops, times(clock))
    refused = await client.post(f"{BREACHES}/{made['id']}/estimate", headers=ops)
    assert_problem(refused, 400, "breach_scope_incomplete")
    assert refused.json()["missing"] == ["scope.tenants", "scope.window_start",
                                         "scope.window_end", "scope.categories"]


# --------------------------------------------------------------------------- garbage


GARBAGE = [
    ({"aware_at": None}, "validation_failed"),
    ({"aware_at": "2025-12-31T10:00:00"}, "validation_failed"),  # no zone
    ({"aware_at": "yesterday"}, "validation_failed"),
    ({"detected_at": "2025-12-31T23:00:00Z", "aware_at": "2025-12-31T22:00:00Z"},
     "invalid_aware_at"),
    ({"aware_at": "2026-01-02T00:00:00Z"}, "invalid_aware_at"),
    ({"detected_at": "2026-01-02T00:00:00Z", "aware_at": "2026-01-03T00:00:00Z"},
     "invalid_detected_at"),
    ({"nature": "leak"}, "validation_failed"),
    ({"nature_description": "\x00"}, "invalid_text"),
    ({"nature_description": "   "}, "invalid_text"),
    ({"nature_description": "x" * 2001}, "validation_failed"),
    ({"approx_subjects": "lots"}, "invalid_approximation"),
    ({"approx_subjects": "500-100"}, "invalid_approximation"),
    ({"approx_subjects": -1}, "validation_failed"),
    ({"approx_subjects": True}, "validation_failed"),
    ({"approx_subjects": 1.5}, "validation_failed"),
    ({"approx_records": "unknown"}, "invalid_approximation"),
    ({"categories_of_records": ["user.favourite_colour"]}, "unknown_data_category"),
    ({"categories_of_records": ["system.operations"]}, "unknown_data_category"),
    ({"categories_of_records": "user.contact.email"}, "validation_failed"),
    ({"categories_of_subjects": [""]}, "validation_failed"),
    ({"categories_of_subjects": ["line\nbreak"]}, "invalid_text"),
    ({"contact": "a\x07b"}, "invalid_text"),
    ({"scope": {"tenants": ["acc_nobody"]}}, "unknown_account"),
    ({"scope": {"window_start": "2025-12-30T00:00:00Z", "window_end": "2025-12-20T00:00:00Z"}},
     "invalid_window"),
    ({"scope": {"categories": ["user.shoe_size"]}}, "unknown_data_category"),
    ({"scope": {"tenant": []}}, "validation_failed"),
    ({"status": "notified"}, "validation_failed"),
    ({"surprise": 1}, "validation_failed"),
]


@pytest.mark.parametrize(("change", "code"), GARBAGE)
async def test_garbage_is_refused_and_nothing_is_written(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str], change: dict[str, Any], code: str) -> None:  # noqa: F811
    body = {**times(clock), **complete([acme.id]), **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert_problem(await client.post(BREACHES, headers=ops, json=body), 400, code)
    assert await counts(rt) == {"breaches": 0, "versions": 0, "notices": 0}
    if {"aware_at", "detected_at"} & set(change):  # the breach's own: not a version's
        return
    made = await create(client, ops, times(clock))
    update = {k: v for k, v in change.items() if k not in ("detected_at", "aware_at")}
    refused = await client.post(f"{BREACHES}/{made['id']}/versions", headers=ops, json=update)
    assert_problem(refused, 400, code)
    assert await counts(rt) == {"breaches": 1, "versions": 1, "notices": 0}


async def test_garbage_ids_and_bodies_elsewhere(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    for path in ("/brc_nothing", "/brc_00000000000000000000000000", "/" + "x" * 300):
        assert_problem(await client.get(BREACHES + path, headers=ops), 404, "breach_not_found")
        assert_problem(await client.post(BREACHES + path + "/notify", headers=ops), 404,
                       "breach_not_found")
    made = await create(client, ops, times(clock))
    for body in ({}, {"reason": ""}, {"reason": "x" * 501}, {"reason": 5}):
        assert_problem(await client.post(f"{BREACHES}/{made['id']}/close", headers=ops,
                                         json=body), 400, "validation_failed")
    assert_problem(await client.post(f"{BREACHES}/{made['id']}/close", headers=ops,
                                     json={"reason": "two\nlines"}), 400, "invalid_text")
    for params in ({"status": "forgotten"}, {"overdue": "perhaps"}):
        assert_problem(await client.get(BREACHES, headers=ops, params=params), 400,
                       "validation_failed")
    shown = (await client.get(f"{BREACHES}/{made['id']}", headers=ops)).json()
    assert shown["status"] == "open"


# --------------------------------------------------------------------------- who may call


async def test_a_clients_key_or_session_is_refused_on_every_route(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await create(client, ops, {**times(clock), **complete([acme.id])})
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    checked = 0
    for route in operator_router.routes:
        path = route.path.replace("{breach_id}", made["id"])  # type: ignore[attr-defined]
        for method in route.methods:  # type: ignore[attr-defined]
            for headers in (acme.headers, owner, {}):
                body = complete([acme.id]) if method == "POST" else None
                answer = await client.request(method, path, headers=headers, json=body)
                assert answer.status_code in (401, 403), (method, path, answer.text)
                checked += 1
    assert checked == 7 * 3
    assert await counts(rt) == {"breaches": 1, "versions": 1, "notices": 0}
    assert await mail_jobs(rt) == []
