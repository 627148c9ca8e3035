"""The privacy page: the queue of data subject requests (open ones first by due date,
the overdue marked, filtered by status), a request recorded, extended, decided and
refused, its bundle downloaded once carried out; legal holds and restrictions. Only
the roles with ``privacy:manage`` may open it; garbage and another account's ids change
nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, settle
from tests.portal.pages import field_error, page_error, signed_in
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.privacy.models import PrivacyRequest
from tidings.runtime import Runtime

CANARY = "+12025550173"
OTHER = "+12025550174"
DAY = 86400.0
REQUEST_ID = re.compile(r"dsr_[0-9a-z]{26}")


async def compliance(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant) -> str:
    """``client`` as the account's compliance officer; the form token."""
    return await signed_in(client, rt, await person(rt, tenant.id, "compliance"))


async def record(client: httpx.AsyncClient, tenant: Tenant, token: str, type_: str,
                 address: str = CANARY, **more: str) -> str:
    """A request recorded from the page's form; its id."""
    before = await request_ids(client, tenant)
    kind = "email" if "@" in address else "number"
    made = await client.post("/portal/privacy/requests", data={
        "_csrf": token, "type": type_, "subject_kind": kind, "subject": address, **more})
    assert made.status_code == 303, made.text[:600]
    assert made.headers["location"] == "/portal/privacy?recorded=1"
    [new] = await request_ids(client, tenant) - before
    return new


async def request_ids(client: httpx.AsyncClient, tenant: Tenant) -> set[str]:
    listed = await client.get("/v1/privacy/requests", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    return {r["id"] for r in listed.json()}


async def api_request(client: httpx.AsyncClient, tenant: Tenant,
                      request_id: str) -> dict[str, Any]:
    found = await client.get(f"/v1/privacy/requests/{request_id}", headers=tenant.headers)
    assert found.status_code == 200, found.text
    return dict(found.json())


async def request_count(rt: Runtime, tenant: str) -> int:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(
            PrivacyRequest).where(PrivacyRequest.tenant_id == tenant)) or 0)


def queue_rows(page: httpx.Response) -> list[str]:
    """The queue's rows, in order, each as its HTML."""
    body = re.search(r'<table class="data messages" id="requests">.*?<tbody>(.*?)</tbody>',
                     page.text, re.S)
    assert body, page.text[:600]
    return re.findall(r"<tr.*?</tr>", body.group(1), re.S)


def ids_in(rows: list[str]) -> list[str]:
    """The request each row links to."""
    return [found for row in rows for found in REQUEST_ID.findall(row)[:1]]


async def test_a_compliance_officer_records_a_request_and_sees_the_queue_due_first(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    officer = await person(rt, acme.id, "compliance")
    token = await signed_in(client, rt, officer)
    empty = await client.get("/portal/privacy")
    assert empty.status_code == 200
    assert 'href="/portal/privacy" aria-current="page"' in empty.text
    assert "No requests match." in empty.text

    first = await record(client, acme, token, "objection", note="Stop the marketing texts.")
    shown = await api_request(client, acme, first)
    assert (shown["type"], shown["status"], shown["source"]) == ("objection", "received",
                                                                 "portal")
    assert shown["subject"] == {"number": CANARY}
    assert shown["note"] == "Stop the marketing texts."
    assert shown["due_at"].startswith("2026-02-01T00:00")
    recorded = await client.get("/portal/privacy?recorded=1")
    assert "The request is recorded" in recorded.text
    [row] = queue_rows(recorded)
    for shown_there in (first, CANARY, "2026-02-01", "objection"):
        assert shown_there in row

    clock.advance(3 * DAY)
    token = await signed_in(client, rt, officer)  # a new session: the first one idled out
    second = await record(client, acme, token, "objection", "ann@example.com")
    closed = await record(client, acme, token, "objection", OTHER)
    refused = await client.post(f"/portal/privacy/requests/{closed}/reject", data={
        "_csrf": token, "rejection_reason": "Identity not established."})
    assert refused.status_code == 303
    clock.advance(30 * DAY)  # the first is past its due date, the second not yet
    await signed_in(client, rt, officer)

    queue = await client.get("/portal/privacy")
    rows = queue_rows(queue)
    assert ids_in(rows) == [first, second, closed]
    assert 'class="overdue"' in rows[0]
    assert "overdue" not in rows[1]
    assert "overdue" not in rows[2]
    assert "rejected" in rows[2]

    only = await client.get("/portal/privacy?status=rejected")
    assert ids_in(queue_rows(only)) == [closed]
    open_ = await client.get("/portal/privacy?status=open")
    assert sorted(ids_in(queue_rows(open_))) == sorted([first, second])
    bad = await client.get("/portal/privacy?status=lost")
    assert bad.status_code == 400
    assert field_error(bad, "status")

    page = await client.get(f"/portal/privacy/requests/{first}")
    assert page.status_code == 200
    assert "overdue by 2 days" in page.text
    assert "Stop the marketing texts." in page.text
    later = await client.get(f"/portal/privacy/requests/{second}")
    assert "1 day left" in later.text


@pytest.mark.parametrize("role", ["developer", "support"])
async def test_a_role_without_privacy_manage_gets_the_refusal_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, role))
    page = await client.get("/portal/privacy")
    assert page.status_code == 403
    assert page_error(page) == "permission_denied"
    made = await client.post("/portal/privacy/requests", data={
        "_csrf": token, "type": "erasure", "subject_kind": "number", "subject": CANARY})
    assert made.status_code == 403
    assert page_error(made) == "permission_denied"
    assert await request_count(rt, acme.id) == 0
    elsewhere = await client.get("/portal/messages")
    assert 'href="/portal/privacy"' not in elsewhere.text


GOOD = {"type": "access", "subject_kind": "number", "subject": CANARY, "note": "",
        "rectify_to": ""}


@pytest.mark.parametrize(("changes", "field"), [
    ({"type": ""}, "type"),
    ({"type": "deletion"}, "type"),
    ({"type": "x" * 5000}, "type"),
    ({"subject_kind": ""}, "subject_kind"),
    ({"subject_kind": "fax"}, "subject_kind"),
    ({"subject": ""}, "subject"),
    ({"subject": "   "}, "subject"),
    ({"subject": "not a number"}, "subject"),
    ({"subject": "+1" + "9" * 40}, "subject"),
    ({"subject": "ann@example.com"}, "subject"),
    ({"subject": "+1202555\x000173"}, "subject"),
    ({"subject_kind": "email", "subject": "no-at-sign.example.com"}, "subject"),
    ({"subject_kind": "email", "subject": "a@" + "b" * 300 + ".com"}, "subject"),
    ({"subject_kind": "email", "subject": "ann@"}, "subject"),
    ({"note": "n" * 2001}, "note"),
    ({"note": "bell\x07"}, "note"),
    ({"type": "rectification"}, "rectify_to"),
    ({"type": "rectification", "rectify_to": CANARY}, "rectify_to"),
    ({"type": "rectification", "rectify_to": "garbage"}, "rectify_to"),
    ({"type": "rectification", "rectify_to": "+1" + "2" * 60}, "rectify_to"),
])
async def test_garbage_in_a_field_is_refused_beside_it_and_records_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, changes: dict[str, str],
        field: str) -> None:
    token = await compliance(client, rt, acme)
    answer = await client.post("/portal/privacy/requests",
                               data={"_csrf": token, **GOOD, **changes})
    assert answer.status_code == 400, answer.text[:600]
    assert field_error(answer, field), (changes, answer.text[:2000])
    assert await request_count(rt, acme.id) == 0


async def test_a_form_without_its_token_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    for data in ({**GOOD}, {**GOOD, "_csrf": ""}, {**GOOD, "_csrf": token[::-1]}):
        answer = await client.post("/portal/privacy/requests", data=data)
        assert answer.status_code == 403
        assert page_error(answer) == "csrf_failed"
    held = await client.post("/portal/privacy/holds", data={
        "hold_kind": "number", "hold_subject": CANARY, "basis": "Claim 7"})
    assert held.status_code == 403
    assert await request_count(rt, acme.id) == 0
    assert (await client.get("/v1/privacy/holds", headers=acme.headers)).json() == []


async def test_an_erasure_already_under_way_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    await record(client, acme, token, "erasure")
    again = await client.post("/portal/privacy/requests", data={
        "_csrf": token, **GOOD, "type": "erasure"})
    assert again.status_code == 400
    assert "already under way" in again.text
    assert await request_count(rt, acme.id) == 1


async def test_extend_needs_a_reason_and_stays_within_three_months(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    request_id = await record(client, acme, token, "objection")
    extend = f"/portal/privacy/requests/{request_id}/extend"
    for data, field in (({"months": "1", "extension_reason": ""}, "extension_reason"),
                        ({"months": "1", "extension_reason": " \t "}, "extension_reason"),
                        ({"months": "1", "extension_reason": "r" * 501}, "extension_reason"),
                        ({"months": "3", "extension_reason": "Complex."}, "months"),
                        ({"months": "", "extension_reason": "Complex."}, "months"),
                        ({"months": "one", "extension_reason": "Complex."}, "months")):
        refused = await client.post(extend, data={"_csrf": token, **data})
        assert refused.status_code == 400, data
        assert field_error(refused, field), (data, refused.text[:1000])
    assert (await api_request(client, acme, request_id))["extended_at"] is None

    done = await client.post(extend, data={"_csrf": token, "months": "2",
                                           "extension_reason": "Many records to check."})
    assert done.status_code == 303
    assert done.headers["location"] == f"/portal/privacy/requests/{request_id}"
    shown = await api_request(client, acme, request_id)
    assert shown["due_at"].startswith("2026-04-01")
    assert shown["extension_reason"] == "Many records to check."
    beyond = await client.post(extend, data={"_csrf": token, "months": "1",
                                             "extension_reason": "More."})
    assert beyond.status_code == 400
    assert field_error(beyond, "months")
    page = await client.get(f"/portal/privacy/requests/{request_id}")
    assert "Many records to check." in page.text
    assert "the deadline is extended" in page.text


async def test_an_objection_is_completed_or_refused_with_a_note(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    objection = await record(client, acme, token, "objection")
    base = f"/portal/privacy/requests/{objection}"
    page = await client.get(base)
    assert f'action="{base}/complete"' in page.text
    empty = await client.post(f"{base}/complete", data={"_csrf": token, "resolution": ""})
    assert empty.status_code == 400
    assert field_error(empty, "resolution")
    no_reason = await client.post(f"{base}/reject", data={"_csrf": token,
                                                          "rejection_reason": ""})
    assert no_reason.status_code == 400
    assert field_error(no_reason, "rejection_reason")
    assert (await api_request(client, acme, objection))["status"] == "received"

    done = await client.post(f"{base}/complete", data={
        "_csrf": token, "resolution": "Marketing stopped for this number."})
    assert done.status_code == 303
    shown = await api_request(client, acme, objection)
    assert shown["status"] == "completed"
    assert shown["outcome"]["resolution"] == "Marketing stopped for this number."
    closed = await client.get(base)
    assert "Marketing stopped for this number." in closed.text
    assert f'action="{base}/extend"' not in closed.text
    late = await client.post(f"{base}/reject", data={"_csrf": token,
                                                     "rejection_reason": "Too late."})
    assert late.status_code == 400
    assert "can no longer change" in late.text
    assert (await api_request(client, acme, objection))["status"] == "completed"

    access = await record(client, acme, token, "access", OTHER)
    page = await client.get(f"/portal/privacy/requests/{access}")
    assert f"/portal/privacy/requests/{access}/complete" not in page.text
    by_hand = await client.post(f"/portal/privacy/requests/{access}/complete",
                                data={"_csrf": token, "resolution": "Done."})
    assert by_hand.status_code == 400
    assert "carried out by Tidings" in by_hand.text


async def test_another_accounts_request_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    theirs = await client.post("/v1/privacy/requests", headers=globex.headers, json={
        "type": "objection", "subject": {"number": CANARY}})
    assert theirs.status_code == 201, theirs.text
    request_id = theirs.json()["id"]
    token = await compliance(client, rt, acme)
    base = f"/portal/privacy/requests/{request_id}"
    for answer in (await client.get(base), await client.get(f"{base}/bundle.json"),
                   await client.get(f"{base}/bundle.html"),
                   await client.post(f"{base}/extend", data={
                       "_csrf": token, "months": "1", "extension_reason": "Mine now."}),
                   await client.post(f"{base}/complete", data={
                       "_csrf": token, "resolution": "Closed."}),
                   await client.post(f"{base}/reject", data={
                       "_csrf": token, "rejection_reason": "No."}),
                   await client.post(f"{base}/extend", data={"_csrf": token})):
        assert answer.status_code == 404, answer.text[:400]
        assert page_error(answer) == "privacy_request_not_found"
    assert request_id not in (await client.get("/portal/privacy")).text
    shown = await api_request(client, globex, request_id)
    assert (shown["status"], shown["extended_at"]) == ("received", None)
    for path in ("/portal/privacy/holds/hold_nothing/release",
                 "/portal/privacy/restrictions/rst_nothing/lift",
                 "/portal/privacy/requests/" + "x" * 500):
        missing = await client.post(path, data={"_csrf": token}) if "requests" not in path \
            else await client.get(path)
        assert missing.status_code == 404, path


async def test_an_access_bundle_downloads_as_json_and_html_once_carried_out(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers, json={
        "to": CANARY, "from": "Acme", "body": "Your table is ready"})
    assert sent.status_code in (200, 201, 202), sent.text
    await settle(rt, clock, seconds=10)
    officer = await person(rt, acme.id, "compliance")
    token = await signed_in(client, rt, officer)
    request_id = await record(client, acme, token, "access")
    base = f"/portal/privacy/requests/{request_id}"
    early = await client.get(f"{base}/bundle.json")
    assert early.status_code == 409
    assert page_error(early) == "bundle_not_ready"
    assert "Download JSON" not in (await client.get(base)).text

    await settle(rt, clock)
    page = await client.get(base)
    assert page.status_code == 200
    assert "completed" in page.text
    assert re.search(r"<dt>Messages</dt><dd>1</dd>", page.text), page.text
    assert f'href="{base}/bundle.json"' in page.text
    assert f'href="{base}/bundle.html"' in page.text

    as_json = await client.get(f"{base}/bundle.json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["content-disposition"] == (
        f'attachment; filename="{request_id}.json"')
    assert as_json.headers["cache-control"] == "no-store"
    bundle = as_json.json()
    assert bundle == (await client.get(f"/v1/privacy/requests/{request_id}/bundle",
                                       headers=acme.headers)).json()
    [message] = bundle["messages"]
    assert message["body"] == "Your table is ready"

    as_html = await client.get(f"{base}/bundle.html")
    assert as_html.status_code == 200
    assert as_html.headers["content-type"].startswith("text/html")
    assert as_html.headers["content-disposition"] == (
        f'attachment; filename="{request_id}.html"')
    assert "Your table is ready" in as_html.text

    clock.advance(8 * DAY)  # kept seven days
    token = await signed_in(client, rt, officer)
    gone = await client.get(f"{base}/bundle.json")
    assert gone.status_code == 410
    assert page_error(gone) == "bundle_expired"

    objection = await record(client, acme, token, "objection", OTHER)
    none = await client.get(f"/portal/privacy/requests/{objection}/bundle.json")
    assert none.status_code == 404
    assert page_error(none) == "bundle_not_found"


async def test_a_legal_hold_blocks_an_erasure_until_released(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    for data, field in (({"hold_subject": "", "basis": "Claim 7"}, "hold_subject"),
                        ({"hold_subject": "nonsense", "basis": "Claim 7"}, "hold_subject"),
                        ({"hold_kind": "fax", "hold_subject": CANARY, "basis": "Claim 7"},
                         "hold_kind"),
                        ({"hold_subject": CANARY, "basis": ""}, "basis"),
                        ({"hold_subject": CANARY, "basis": "b" * 501}, "basis")):
        refused = await client.post("/portal/privacy/holds", data={
            "_csrf": token, "hold_kind": "number", **data})
        assert refused.status_code == 400, data
        assert field_error(refused, field), (data, refused.text[:1000])
    assert (await client.get("/v1/privacy/holds", headers=acme.headers)).json() == []

    held = await client.post("/portal/privacy/holds", data={
        "_csrf": token, "hold_kind": "number", "hold_subject": CANARY, "basis": "Claim 7"})
    assert held.status_code == 303
    twice = await client.post("/portal/privacy/holds", data={
        "_csrf": token, "hold_kind": "number", "hold_subject": CANARY, "basis": "Claim 8"})
    assert twice.status_code == 400
    assert field_error(twice, "hold")
    [hold] = (await client.get("/v1/privacy/holds", headers=acme.headers)).json()
    assert hold["basis"] == "Claim 7"

    erasure = await record(client, acme, token, "erasure")
    await settle(rt, clock)
    assert (await api_request(client, acme, erasure))["status"] == "blocked_legal_hold"
    page = await client.get(f"/portal/privacy/requests/{erasure}")
    assert "blocked by a legal hold" in page.text
    assert "Claim 7" in page.text
    assert "their data is kept under a legal hold" in page.text

    queue = await client.get("/portal/privacy")
    assert f'action="/portal/privacy/holds/{hold["id"]}/release"' in queue.text
    released = await client.post(f"/portal/privacy/holds/{hold['id']}/release",
                                 data={"_csrf": token})
    assert released.status_code == 303
    again = await client.post(f"/portal/privacy/holds/{hold['id']}/release",
                              data={"_csrf": token})
    assert again.status_code == 409
    assert "released already" in again.text
    [hold] = (await client.get("/v1/privacy/holds", headers=acme.headers)).json()
    assert hold["released_at"] is not None

    erased = await record(client, acme, token, "erasure")
    await settle(rt, clock)
    assert (await api_request(client, acme, erased))["status"] == "completed"
    [row] = [r for r in queue_rows(await client.get("/portal/privacy"))
             if erased in r]
    assert "erased" in row
    assert CANARY not in row


async def test_a_restriction_is_listed_and_lifted_with_its_notice(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    request_id = await record(client, acme, token, "restriction")
    await settle(rt, clock)
    [restriction] = (await client.get("/v1/privacy/restrictions",
                                      headers=acme.headers)).json()
    assert restriction["request_id"] == request_id
    queue = await client.get("/portal/privacy")
    lift = f"/portal/privacy/restrictions/{restriction['id']}/lift"
    assert f'action="{lift}"' in queue.text
    blocked = await client.post("/v1/messages", headers=acme.headers, json={
        "to": CANARY, "from": "Acme", "body": "Hello"})
    assert blocked.status_code == 409

    lifted = await client.post(lift, data={"_csrf": token})
    assert lifted.status_code == 303
    [restriction] = (await client.get("/v1/privacy/restrictions",
                                      headers=acme.headers)).json()
    assert restriction["lifted_at"] is not None
    assert f'action="{lift}"' not in (await client.get("/portal/privacy")).text
    page = await client.get(f"/portal/privacy/requests/{request_id}")
    assert "their restriction is lifted" in page.text
    again = await client.post(lift, data={"_csrf": token})
    assert again.status_code == 409
    assert "lifted already" in again.text


async def test_the_retention_is_chosen_within_the_limits_and_its_runs_shown(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    token = await compliance(client, rt, acme)
    page = await client.get("/portal/privacy")
    assert 'data-retention-days="90"' in page.text
    for raw in ("thirty", "0", "731", "-5", "9" * 20):
        refused = await client.post("/portal/privacy/retention",
                                    data={"_csrf": token, "message_body_days": raw})
        assert refused.status_code == 400, raw
        assert field_error(refused, "message_body_days"), raw
    shown = (await client.get("/v1/privacy/retention", headers=acme.headers)).json()
    assert (shown["message_body_days"], shown["chosen"]) == (90, False)
    no_token = await client.post("/portal/privacy/retention", data={"message_body_days": "30"})
    assert no_token.status_code == 403
    saved = await client.post("/portal/privacy/retention",
                              data={"_csrf": token, "message_body_days": "30"})
    assert saved.status_code == 303, saved.text[:600]
    assert 'data-retention-days="30"' in (await client.get("/portal/privacy")).text
    back = await client.post("/portal/privacy/retention",
                             data={"_csrf": token, "message_body_days": ""})
    assert back.status_code == 303
    shown = (await client.get("/v1/privacy/retention", headers=acme.headers)).json()
    assert (shown["message_body_days"], shown["chosen"]) == (90, False)


async def test_a_support_person_may_not_set_the_retention(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "support"))
    refused = await client.post("/portal/privacy/retention",
                                data={"_csrf": token, "message_body_days": "5"})
    assert refused.status_code == 403
    shown = (await client.get("/v1/privacy/retention", headers=acme.headers)).json()
    assert shown["chosen"] is False
