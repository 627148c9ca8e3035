"""Policy-change notices, on both databases: the operator publishes a version (stored
whole with its hash, versions never reused or rewritten); every account not terminated
gets exactly one notice, its owners' mail ids as proof, by a job that a crash or a
second run never makes mail twice; a client objects until the deadline (included) and
not a second later, accepts explicitly, or is deemed to accept by silence; another
account's notice is not found; the operator counts the answers and resolves
objections; an effective date too soon, a reused label and garbage are refused with
nothing written; a member without privacy:manage and a client's key on the operator's
routes are refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, assert_problem, make_tenant
from tests.mail.test_mail_jobs import mailbox
from tests.users.people import person, session_headers
from tidings.accounts.models import AccountStatus
from tidings.audit.models import AuditEvent
from tidings.audit.service import Actor
from tidings.core.clock import FakeClock
from tidings.jobs.outbox import Job
from tidings.mail.service import MAIL_JOB
from tidings.policies import notifying
from tidings.policies.api import operator_router, router
from tidings.policies.models import PolicyNotice, PolicyVersion
from tidings.policies.notifying import notify_accounts
from tidings.policies.service import NOTIFY_JOB
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

OPERATOR = "/v1/operator/policies"
CLIENT = "/v1/policies"
TEXT = "# Privacy Policy\n\nWe keep message bodies for 60 days, no longer 90.\n"
SUMMARY = "Message bodies are kept 60 days instead of 90."
SECOND = 1.0


def body(**changes: Any) -> dict[str, Any]:
    made = {"kind": "privacy_policy", "version": "2026-02", "title": "Privacy Policy",
            "summary": SUMMARY, "text": TEXT}
    made.update(changes)
    return {k: v for k, v in made.items() if v is not None}


async def publish(client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
                  **changes: Any) -> dict[str, Any]:
    made = await client.post(OPERATOR, headers=ops, json=body(**changes))
    assert made.status_code == 201, made.text
    return dict(made.json())


async def notify(rt: Runtime) -> int:
    """Run the notifying job (only it: the mails stay queued, to be looked at)."""
    return await rt.worker_pool().run_once(NOTIFY_JOB)


async def stored(rt: Runtime) -> dict[str, int]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        async def count(model: Any, *where: Any) -> int:
            query = select(func.count()).select_from(model).where(*where)
            return int(await session.scalar(query) or 0)
        return {"versions": await count(PolicyVersion),
                "notices": await count(PolicyNotice),
                "notify_jobs": await count(Job, Job.kind == NOTIFY_JOB),
                "mail_jobs": await count(Job, Job.kind == MAIL_JOB),
                "audit": await count(AuditEvent)}


async def notice_rows(rt: Runtime) -> dict[str, PolicyNotice]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.scalars(select(PolicyNotice))).all()
    return {row.tenant_id: row for row in rows}


async def mail_jobs(rt: Runtime) -> list[Job]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(Job).where(Job.kind == MAIL_JOB)
                                           .order_by(Job.id))).all())


async def audit_of(rt: Runtime, tenant: str, action: str) -> list[AuditEvent]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.action == action))).all())


def at(raw: str) -> datetime:
    return datetime.fromisoformat(raw)


# --------------------------------------------------------------------------- publishing


async def test_every_account_not_terminated_gets_one_notice_with_its_mails_as_proof(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    branch = await make_tenant(rt, "Acme Branch", parent=acme.id)
    ownerless = await make_tenant(rt, "Initech")
    gone = await make_tenant(rt, "Gone", status=AccountStatus.TERMINATED)
    await person(rt, gone.id, "owner", email="owner@gone.example")
    acme_owners = [await person(rt, acme.id, "owner", email=f"owner{n}@acme.example")
                   for n in (1, 2)]
    globex_owner = await person(rt, globex.id, "owner", email="owner@globex.example")
    branch_owner = await person(rt, branch.id, "owner", email="owner@branch.example")
    await person(rt, acme.id, "admin", email="admin@acme.example")  # not an owner

    made = await publish(client, ops)
    now = clock.now()
    assert (made["kind"], made["version"], made["status"]) == (
        "privacy_policy", "2026-02", "upcoming")
    assert made["sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    assert made["text"] == TEXT
    # A calendar month from 1 January; effective by default at the soonest allowed.
    assert at(made["published_at"]) == now
    assert at(made["objection_deadline"]) == datetime(2026, 2, 1, tzinfo=UTC)
    assert at(made["effective_at"]) == datetime(2026, 2, 1, tzinfo=UTC)
    assert made["url"] == "http://127.0.0.1:8000/legal/privacy_policy/2026-02"
    assert (made["notifying"], made["counts"]["notified"], made["responses"]) == (
        True, 0, [])
    assert (await stored(rt))["notify_jobs"] == 1

    assert await notify(rt) == 1
    notices = await notice_rows(rt)
    assert set(notices) == {acme.id, globex.id, branch.id, ownerless.id}  # never "Gone"
    assert len(notices[acme.id].mail_ids) == 2
    assert (notices[ownerless.id].mail_ids, notices[ownerless.id].undeliverable) == (
        [], "no_active_owner")
    shown = (await client.get(f"{OPERATOR}/{made['id']}", headers=ops)).json()
    assert shown["notifying"] is False
    assert shown["counts"] == {"notified": 4, "undeliverable": 1, "pending": 4,
                               "objected": 0, "accepted": 0, "deemed_accepted": 0,
                               "open_objections": 0}
    assert {r["account_id"]: r["mail_ids"] for r in shown["responses"]} == {
        tenant: row.mail_ids for tenant, row in notices.items()}
    # The mails are really sent, one per owner, and say what the policies promise.
    await rt.worker_pool().drain()
    kept = {m.id: m for m in await mailbox(rt)}
    for tenant, owners in ((acme.id, acme_owners), (globex.id, [globex_owner]),
                           (branch.id, [branch_owner])):
        mails = [kept[mail_id] for mail_id in notices[tenant].mail_ids]
        assert sorted(m.to for m in mails) == sorted(o.email for o in owners)
        for mail in mails:
            assert (mail.kind, mail.account_id) == ("legal", tenant)
            for said in (SUMMARY, made["url"], "2026-02-01 00:00 UTC", "deemed accepted",
                         f"/v1/policies/{made['id']}/objection", made["sha256"]):
                assert said in mail.body, said
    assert len(kept) == 4
    # Each mail is on its account's trail, by the operator's key that published.
    events = await audit_of(rt, acme.id, "policy.notify")
    assert len(events) == 2
    assert {e.actor_type for e in events} == {"operator"}
    # Run again, by the job or by hand: nobody is told twice.
    before = await stored(rt)
    assert await notify_accounts(rt, made["id"], actor=Actor("operator", "again")) == 0
    assert await rt.worker_pool().drain() == 0
    assert await stored(rt) == before


async def test_a_crash_midway_leaves_the_job_to_tell_the_rest_and_nobody_twice(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    third = await make_tenant(rt, "Initech")
    for tenant in (acme, globex, third):
        await person(rt, tenant.id, "owner", email=f"owner@{tenant.id[-6:]}.example")
    monkeypatch.setattr(notifying, "CHUNK", 1)  # a transaction an account
    real = notifying.queue_owner_notice
    calls = []

    async def crashing(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(kwargs["account_id"])
        if len(calls) == 2:
            raise RuntimeError("the worker's process died")
        return await real(*args, **kwargs)

    monkeypatch.setattr(notifying, "queue_owner_notice", crashing)
    made = await publish(client, ops)
    with pytest.raises(RuntimeError):
        await notify(rt)
    # The first account's chunk was committed with its mail; the second's rolled back.
    assert set(await notice_rows(rt)) == {calls[0]}
    assert len(await mail_jobs(rt)) == 1
    assert (await stored(rt))["notify_jobs"] == 1  # still there, leased
    assert await notify(rt) == 0  # not before its lease ends
    monkeypatch.setattr(notifying, "queue_owner_notice", real)
    clock.advance(rt.settings.job_lease_seconds + SECOND)
    assert await notify(rt) == 1
    notices = await notice_rows(rt)
    assert set(notices) == {acme.id, globex.id, third.id}
    jobs = await mail_jobs(rt)
    assert sorted(j.tenant_id for j in jobs) == sorted([acme.id, globex.id, third.id])
    assert sorted(mail for n in notices.values() for mail in n.mail_ids) == sorted(
        j.ref_id for j in jobs)
    shown = (await client.get(f"{OPERATOR}/{made['id']}", headers=ops)).json()
    assert (shown["notifying"], shown["counts"]["notified"]) == (False, 3)
    assert (await stored(rt))["notify_jobs"] == 0


async def test_an_account_opened_after_publication_is_not_told_and_sees_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    clock.advance(SECOND)
    late = await make_tenant(rt, "Latecomer")
    await notify(rt)
    assert set(await notice_rows(rt)) == {acme.id}
    assert (await client.get(CLIENT, headers=late.headers)).json() == []
    before = await stored(rt)
    for method, path, json in (("GET", f"{CLIENT}/{made['id']}", None),
                               ("POST", f"{CLIENT}/{made['id']}/objection", {"reason": "No."}),
                               ("POST", f"{CLIENT}/{made['id']}/acceptance", None)):
        answer = await client.request(method, path, headers=late.headers, json=json)
        assert_problem(answer, 404, "policy_not_found")
    assert await stored(rt) == before


# --------------------------------------------------------------------------- answers


async def test_an_objection_until_the_deadline_and_not_a_second_later(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    path = f"{CLIENT}/{made['id']}"
    [listed] = (await client.get(CLIENT, headers=acme.headers)).json()
    assert (listed["id"], listed["state"], listed["may_object"], listed["status"]) == (
        made["id"], "pending", True, "upcoming")
    assert "text" not in listed
    read = (await client.get(path, headers=acme.headers)).json()
    assert (read["text"], read["summary"], read["objection_reason"]) == (TEXT, SUMMARY, None)

    deadline = at(made["objection_deadline"])
    clock.advance((deadline - clock.now()).total_seconds())  # the deadline, included
    reason = "We cannot agree to shorter retention\nwithout a notice to our customers."
    objected = await client.post(f"{path}/objection", headers=acme.headers,
                                 json={"reason": f"  {reason} "})
    assert objected.status_code == 200, objected.text
    shown = objected.json()
    assert (shown["state"], shown["objection_reason"], shown["may_object"]) == (
        "objected", reason, False)
    assert at(shown["answered_at"]) == deadline
    assert shown["answered_by"].startswith("api_key:")
    [event] = await audit_of(rt, acme.id, "policy.object")
    assert (event.actor_type, event.table_name, event.row_id, event.fields) == (
        "api_key", "policy_notices", shown["notice_id"], ["answer", "objection_reason"])
    row = (await notice_rows(rt))[acme.id]
    assert row.objection_reason_enc is not None
    assert b"retention" not in row.objection_reason_enc  # under the account's key
    assert_problem(await client.post(f"{path}/objection", headers=acme.headers,
                                     json={"reason": "Again."}), 409, "already_objected")
    assert_problem(await client.post(f"{path}/acceptance", headers=acme.headers),
                   409, "already_objected")

    clock.advance(SECOND)  # a second past the deadline: silence has accepted
    before, row_before = await stored(rt), (await notice_rows(rt))[globex.id]
    late = await client.post(f"{path}/objection", headers=globex.headers,
                             json={"reason": "Too late?"})
    assert_problem(late, 409, "objection_window_closed")
    assert_problem(await client.post(f"{path}/acceptance", headers=globex.headers),
                   409, "already_deemed_accepted")
    assert await stored(rt) == before
    row_after = (await notice_rows(rt))[globex.id]
    assert (row_after.answer, row_after.objection_reason_enc, row_after.answered_at) == (
        row_before.answer, None, None)
    [globex_view] = (await client.get(CLIENT, headers=globex.headers)).json()
    assert (globex_view["state"], globex_view["may_object"]) == ("deemed_accepted", False)
    assert (await client.get(path, headers=acme.headers)).json()["state"] == "objected"
    counts = (await client.get(OPERATOR, headers=ops)).json()[0]["counts"]
    assert (counts["objected"], counts["deemed_accepted"], counts["pending"],
            counts["open_objections"]) == (1, 1, 0, 1)
    assert [n["id"] for n in (await client.get(
        CLIENT, headers=globex.headers, params={"state": "deemed_accepted"})).json()] == [
        made["id"]]
    assert (await client.get(CLIENT, headers=globex.headers,
                             params={"state": "pending"})).json() == []


async def test_an_explicit_acceptance_by_a_person(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    compliance = await person(rt, acme.id, "compliance")
    headers = await session_headers(rt, compliance)
    made = await publish(client, ops)
    await notify(rt)
    clock.advance(60)
    accepted = await client.post(f"{CLIENT}/{made['id']}/acceptance", headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["state"], accepted.json()["answered_by"]) == (
        "accepted", f"user:{compliance.user_id}")
    [event] = await audit_of(rt, acme.id, "policy.accept")
    assert (event.actor_type, event.actor_id, event.fields) == (
        "user", compliance.user_id, ["answer"])
    before = await stored(rt)
    assert_problem(await client.post(f"{CLIENT}/{made['id']}/acceptance", headers=headers),
                   409, "already_accepted")
    assert_problem(await client.post(f"{CLIENT}/{made['id']}/objection", headers=headers,
                                     json={"reason": "Changed our mind."}),
                   409, "already_accepted")
    assert await stored(rt) == before
    clock.advance(40 * 86400)  # past the deadline: still explicitly accepted
    assert (await client.get(f"{CLIENT}/{made['id']}", headers=acme.headers)).json()[
        "state"] == "accepted"


async def test_the_operator_resolves_an_objection_and_the_client_sees_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops, kind="dpa", version="v2", title="DPA")
    await notify(rt)
    await client.post(f"{CLIENT}/{made['id']}/objection", headers=acme.headers,
                      json={"reason": "Clause 9 is unacceptable."})
    detail = (await client.get(f"{OPERATOR}/{made['id']}", headers=ops)).json()
    assert [(r["account_id"], r["state"], r["objection_reason"])
            for r in detail["responses"]] == [
        (acme.id, "objected", "Clause 9 is unacceptable."), (globex.id, "pending", None)]
    resolution = f"{OPERATOR}/{made['id']}/objections/{acme.id}/resolution"
    for account, code, status in ((globex.id, "no_objection", 409),
                                  ("acc_nobody", "policy_notice_not_found", 404),
                                  ("x" * 300, "policy_notice_not_found", 404)):
        assert_problem(await client.post(
            f"{OPERATOR}/{made['id']}/objections/{account}/resolution", headers=ops,
            json={"outcome": "upheld"}), status, code)
    assert_problem(await client.post(f"{OPERATOR}/pol_nothing/objections/{acme.id}/resolution",
                                     headers=ops, json={"outcome": "upheld"}),
                   404, "policy_not_found")
    clock.advance(600)
    done = await client.post(resolution, headers=ops, json={
        "outcome": "terminating", "note": "The client ends the DPA on 1 March."})
    assert done.status_code == 200, done.text
    assert done.json()["resolution"]["outcome"] == "terminating"
    assert done.json()["state"] == "objected"
    [event] = await audit_of(rt, acme.id, "policy.resolve")
    assert (event.actor_type, event.fields) == ("operator", ["resolution", "resolution_note"])
    assert_problem(await client.post(resolution, headers=ops, json={"outcome": "withdrawn"}),
                   409, "objection_resolved")
    seen = (await client.get(f"{CLIENT}/{made['id']}", headers=acme.headers)).json()
    assert seen["resolution"]["outcome"] == "terminating"
    assert seen["resolution"]["note"] == "The client ends the DPA on 1 March."
    assert at(seen["resolution"]["resolved_at"]) == clock.now()
    counts = (await client.get(f"{OPERATOR}/{made['id']}", headers=ops)).json()["counts"]
    assert (counts["objected"], counts["open_objections"]) == (1, 0)


# --------------------------------------------------------------------------- timing


async def test_an_effective_date_too_soon_is_refused_and_nothing_is_written(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    earliest = datetime(2026, 2, 1, tzinfo=UTC)  # a month, and 31 days, from 1 January
    before = await stored(rt)
    for too_soon in (earliest - timedelta(seconds=1), datetime(2026, 1, 15, tzinfo=UTC),
                     datetime(2025, 12, 1, tzinfo=UTC)):
        refused = await client.post(OPERATOR, headers=ops,
                                    json=body(effective_at=too_soon.isoformat()))
        assert_problem(refused, 400, "notice_too_short")
        assert refused.json()["parameter"] == "effective_at"
        assert at(refused.json()["earliest"]) == earliest
    assert await stored(rt) == before == {**before, "versions": 0, "notify_jobs": 0}
    made = await publish(client, ops, effective_at="2026-02-01T01:00:00+01:00")
    assert at(made["effective_at"]) == earliest


async def test_a_month_shorter_than_thirty_days_takes_effect_after_thirty(
        rt: Runtime, ops: dict[str, str], client: httpx.AsyncClient,  # noqa: F811
        clock: FakeClock) -> None:
    clock.advance((datetime(2026, 2, 1, 9, tzinfo=UTC) - clock.now()).total_seconds())
    too_soon = await client.post(OPERATOR, headers=ops,
                                 json=body(effective_at="2026-03-01T09:00:00Z"))
    assert_problem(too_soon, 400, "notice_too_short")  # a month, but 28 days
    made = await publish(client, ops)
    assert at(made["objection_deadline"]) == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert at(made["effective_at"]) == datetime(2026, 3, 3, 9, tzinfo=UTC)


async def test_a_label_once_used_and_an_effective_date_out_of_order_are_conflicts(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    await publish(client, ops, effective_at="2026-03-01T00:00:00Z")
    before = await stored(rt)
    assert_problem(await client.post(OPERATOR, headers=ops, json=body(
        effective_at="2026-04-01T00:00:00Z")), 409, "policy_version_exists")
    assert_problem(await client.post(OPERATOR, headers=ops, json=body(
        version="2026-03", effective_at="2026-03-01T00:00:00Z")), 409,
        "effective_at_conflict")
    assert await stored(rt) == before
    # The same label for another kind is another version.
    await publish(client, ops, kind="terms", title="Terms of Service")
    listed = (await client.get(OPERATOR, headers=ops, params={"kind": "terms"})).json()
    assert [(v["kind"], v["version"]) for v in listed] == [("terms", "2026-02")]


async def test_the_version_in_force_is_the_latest_to_take_effect(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    first = await publish(client, ops, version="1")
    clock.advance(40 * 86400)
    second = await publish(client, ops, version="2")
    statuses = {v["version"]: v["status"] for v in
                (await client.get(OPERATOR, headers=ops)).json()}
    assert statuses == {"1": "in_force", "2": "upcoming"}
    clock.advance(40 * 86400)
    statuses = {v["version"]: v["status"] for v in
                (await client.get(OPERATOR, headers=ops)).json()}
    assert statuses == {"1": "superseded", "2": "in_force"}
    upcoming = (await client.get(OPERATOR, headers=ops, params={"status": "upcoming"})).json()
    assert upcoming == []
    assert {first["id"], second["id"]} == {v["id"] for v in (await client.get(
        OPERATOR, headers=ops)).json()}


# --------------------------------------------------------------------------- garbage


GARBAGE = [
    ({"kind": "cookies"}, "validation_failed"),
    ({"kind": None}, "validation_failed"),
    ({"kind": 1}, "validation_failed"),
    ({"version": ""}, "validation_failed"),
    ({"version": "x" * 41}, "validation_failed"),
    ({"version": "2027/01"}, "validation_failed"),
    ({"version": "../etc"}, "validation_failed"),
    ({"version": 2027}, "validation_failed"),
    ({"title": ""}, "validation_failed"),
    ({"title": "   "}, "invalid_text"),
    ({"title": "two\nlines"}, "invalid_text"),
    ({"title": "x" * 201}, "validation_failed"),
    ({"summary": None}, "validation_failed"),
    ({"summary": " \n "}, "invalid_text"),
    ({"summary": "bell\x07"}, "invalid_text"),
    ({"summary": "x" * 4001}, "validation_failed"),
    ({"summary": ["a list"]}, "validation_failed"),
    ({"text": None}, "validation_failed"),
    ({"text": "\n\n"}, "invalid_text"),
    ({"text": "nul\x00byte"}, "invalid_text"),
    ({"text": "x" * 200_001}, "validation_failed"),
    ({"effective_at": "next month"}, "validation_failed"),
    ({"effective_at": "2026-03-01T00:00:00"}, "validation_failed"),  # no zone
    ({"effective_at": "2026-02-30T00:00:00Z"}, "validation_failed"),
    ({"effective_at": True}, "validation_failed"),
    ({"effective_at": "2029-01-01T00:00:00Z"}, "invalid_effective_at"),
    ({"sha256": "0" * 64}, "validation_failed"),
    ({"published_at": "2026-01-01T00:00:00Z"}, "validation_failed"),
]


@pytest.mark.parametrize(("change", "code"), GARBAGE)
async def test_garbage_in_a_version_is_refused_and_nothing_is_written(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, ops: dict[str, str],  # noqa: F811
        change: dict[str, Any], code: str) -> None:
    sent = {**body(), **change}
    sent = {k: v for k, v in sent.items() if v is not None}
    before = await stored(rt)
    assert_problem(await client.post(OPERATOR, headers=ops, json=sent), 400, code)
    assert await stored(rt) == before == {**before, "versions": 0, "notify_jobs": 0}


async def test_garbage_in_answers_ids_and_queries_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    objection = f"{CLIENT}/{made['id']}/objection"
    before = await stored(rt)
    for sent, code in (({}, "validation_failed"), ({"reason": ""}, "validation_failed"),
                       ({"reason": "   "}, "invalid_text"),
                       ({"reason": "x" * 2001}, "validation_failed"),
                       ({"reason": 42}, "validation_failed"),
                       ({"reason": "ok", "also": 1}, "validation_failed"),
                       ({"reason": "nul\x00"}, "invalid_text")):
        assert_problem(await client.post(objection, headers=acme.headers, json=sent), 400,
                       code)
    assert_problem(await client.post(objection, content=b"{nope", headers={
        **acme.headers, "Content-Type": "application/json"}), 400, "malformed_json")
    resolution = f"{OPERATOR}/{made['id']}/objections/{acme.id}/resolution"
    for sent in ({}, {"outcome": "forgiven"}, {"outcome": "upheld", "note": ""},
                 {"outcome": "upheld", "note": "x" * 2001}, {"outcome": ["upheld"]},
                 {"outcome": "upheld", "extra": True}):
        assert_problem(await client.post(resolution, headers=ops, json=sent), 400,
                       "validation_failed")
    for path in ("/pol_nothing", "/pol_00000000000000000000000000", "/" + "x" * 300):
        assert_problem(await client.get(CLIENT + path, headers=acme.headers), 404,
                       "policy_not_found")
        assert_problem(await client.get(OPERATOR + path, headers=ops), 404,
                       "policy_not_found")
        assert_problem(await client.post(CLIENT + path + "/acceptance", headers=acme.headers),
                       404, "policy_not_found")
    for params in ({"state": "maybe"}, {"kind": "cookies"}):
        assert_problem(await client.get(CLIENT, headers=acme.headers, params=params), 400,
                       "validation_failed")
    for params in ({"status": "old"}, {"kind": "cookies"}):
        assert_problem(await client.get(OPERATOR, headers=ops, params=params), 400,
                       "validation_failed")
    assert await stored(rt) == before
    assert (await client.get(f"{CLIENT}/{made['id']}", headers=acme.headers)).json()[
        "state"] == "pending"


# --------------------------------------------------------------------------- who may call


async def test_a_member_without_privacy_manage_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    developer = await session_headers(rt, await person(rt, acme.id, "developer"))
    before = await stored(rt)
    checked = 0
    for route in router.routes:
        path = route.path.replace("{version_id}", made["id"])  # type: ignore[attr-defined]
        for method in route.methods:  # type: ignore[attr-defined]
            json = {"reason": "No."} if path.endswith("/objection") else None
            answer = await client.request(method, path, headers=developer, json=json)
            assert_problem(answer, 403, "permission_denied")
            checked += 1
    assert checked == 4
    assert await stored(rt) == before


async def test_a_clients_key_or_session_is_refused_on_every_operator_route(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    before = await stored(rt)
    checked = 0
    for route in operator_router.routes:
        path = (route.path.replace("{version_id}", made["id"])  # type: ignore[attr-defined]
                .replace("{account_id}", acme.id))
        for method in route.methods:  # type: ignore[attr-defined]
            for headers in (acme.headers, owner, {}):
                sent = body(version="other") if path == OPERATOR else {"outcome": "upheld"}
                answer = await client.request(method, path, headers=headers,
                                              json=sent if method == "POST" else None)
                assert answer.status_code in (401, 403), (method, path, answer.text)
                checked += 1
    assert checked == 4 * 3
    assert await stored(rt) == before
