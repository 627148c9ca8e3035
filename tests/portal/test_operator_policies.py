"""The console's Policies pages (``/operator/policies``): staff only; publishing a
version from the form (garbage beside each field, nothing written), the versions with
the answers counted, a version's page with each account's answer and proof of notice,
and the resolution of an objection."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant
from tests.policies.test_policies import TEXT, notify, publish, stored
from tests.portal.pages import field_error, page_error, signed_in
from tests.users.people import Person, person
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

PAGE = "/operator/policies"


async def staff(rt: Runtime) -> Person:
    return await person(rt, None, "operator", email="ops@tidings.example")


def form(token: str, **changes: str) -> dict[str, Any]:
    data = {"_csrf": token, "kind": "dpa", "version": "2026-02",
            "title": "Data Processing Agreement", "summary": "Clause 9: 30 days' notice.",
            "text": TEXT.replace("\n", "\r\n"), "effective_at": ""}
    data.update(changes)
    return data


def count_shown(page: httpx.Response, version_id: str, name: str) -> str:
    row = re.search(rf'<tr id="version-{version_id}">(.*?)</tr>', page.text, re.S)
    assert row, page.text[-2000:]
    found = re.search(rf'data-count="{name}">(.*?)</td>', row.group(1), re.S)
    assert found
    return re.sub(r"\s+", " ", found.group(1)).strip()


async def test_only_staff_open_the_pages(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    for method, path in (("GET", PAGE), ("GET", f"{PAGE}/{made['id']}"), ("POST", PAGE)):
        answer = await client.request(method, path, data=form(token) if method == "POST"
                                      else None)
        assert (answer.status_code, page_error(answer)) == (403, "not_operator_staff")
    assert (await stored(rt))["versions"] == 1


async def test_staff_publish_a_version_and_resolve_an_objection(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    await person(rt, acme.id, "owner", email="owner@acme.example")
    token = await signed_in(client, rt, await staff(rt))
    empty = await client.get(PAGE)
    assert "No policy versions published." in empty.text
    assert 'href="/operator/policies"' in empty.text  # in the console's menu
    assert "2026-02-01 00:00 UTC at the soonest" in empty.text
    made = await client.post(PAGE, data=form(token, effective_at="2026-03-01T12:00"))
    assert made.status_code == 303, made.text[-2000:]
    location = made.headers["location"]
    version_id = location.rsplit("/", 1)[-1]
    assert re.fullmatch(r"pol_[0-9a-z]{26}", version_id)
    api = (await client.get(f"/v1/policies/{version_id}", headers=acme.headers))
    assert api.status_code == 404  # not told until the job ran
    await notify(rt)
    shown = (await client.get(f"/v1/policies/{version_id}", headers=acme.headers)).json()
    assert shown["text"] == TEXT  # line ends as one
    assert shown["effective_at"].startswith("2026-03-01T12:00")
    page = await client.get(PAGE)
    assert count_shown(page, version_id, "notified") == "2"
    assert count_shown(page, version_id, "undeliverable") == "1"
    await client.post(f"/v1/policies/{version_id}/objection", headers=acme.headers,
                      json={"reason": "Clause 9 is too short for us."})
    page = await client.get(PAGE)
    assert count_shown(page, version_id, "objected") == "1 (1 open)"
    detail = await client.get(location)
    assert detail.status_code == 200
    for said in ("Clause 9 is too short for us.", "Record the resolution",
                 "not sent: the account has no active owner", "/legal/dpa/2026-02"):
        assert said in html.unescape(detail.text), said
    assert re.search(r"<code>mail_[0-9a-z]{26}</code>", detail.text)
    resolution = f"{location}/objections/{acme.id}/resolution"
    bad = await client.post(resolution, data={"_csrf": token, "outcome": "forgiven",
                                              "note": "x" * 2001})
    assert bad.status_code == 400
    assert field_error(bad, f"outcome-{acme.id}") == "Choose one of the listed outcomes."
    assert (field_error(bad, f"note-{acme.id}") or "").startswith("Note is too long")
    assert 'x' * 50 in bad.text  # the note comes back to be corrected
    resolved = await client.post(resolution, data={"_csrf": token, "outcome": "upheld",
                                                   "note": "Kept on version 1."})
    assert resolved.status_code == 303, resolved.text[-2000:]
    detail = await client.get(location)
    assert "upheld: the earlier version still applies to the account" in detail.text
    assert "Record the resolution" not in detail.text
    again = await client.post(resolution, data={"_csrf": token, "outcome": "withdrawn"})
    assert again.status_code == 400
    assert "resolved already" in again.text
    nobody = await client.post(f"{location}/objections/acc_nobody/resolution",
                               data={"_csrf": token, "outcome": "withdrawn"})
    assert (nobody.status_code, page_error(nobody)) == (404, "policy_notice_not_found")
    assert (await client.get(f"{PAGE}/pol_nothing")).status_code == 404
    seen = (await client.get(f"/v1/policies/{version_id}", headers=acme.headers)).json()
    assert (seen["resolution"]["outcome"], seen["resolution"]["note"]) == (
        "upheld", "Kept on version 1.")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"kind": "cookies"}, "kind", "Choose one of the listed policies."),
    ({"kind": ""}, "kind", "Choose one of the listed policies."),
    ({"version": ""}, "version", "Version: this field is required."),
    ({"version": "x" * 41}, "version", "Version is too long"),
    ({"version": "2026/02"}, "version", "Version: letters, digits"),
    ({"title": ""}, "title", "Title: this field is required."),
    ({"title": "x" * 201}, "title", "Title is too long"),
    ({"title": "two\nlines"}, "title", "title holds control characters"),
    ({"summary": " "}, "summary", "What changes: this field is required."),
    ({"summary": "x" * 4001}, "summary", "What changes is too long"),
    ({"summary": "bell\x07"}, "summary", "What changes holds characters"),
    ({"text": ""}, "text", "The whole text: this field is required."),
    ({"text": "nul\x00"}, "text", "The whole text holds characters"),
    ({"effective_at": "soon"}, "effective_at", "Enter a time as YYYY-MM-DD HH:MM (UTC)."),
    ({"effective_at": "2026-13-45T99:99"}, "effective_at", "Enter a time as"),
    ({"effective_at": "2026-01-20T00:00"}, "effective_at", "effective_at is too soon"),
    ({"effective_at": "2031-01-01T00:00"}, "effective_at", "effective_at is more than two"),
])
async def test_garbage_in_the_publish_form_comes_back_beside_its_field(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, changes: dict[str, str],
        field: str, message: str) -> None:
    token = await signed_in(client, rt, await staff(rt))
    page = await client.post(PAGE, data=form(token, **changes))
    assert page.status_code == 400
    shown = field_error(page, field)
    assert shown is not None, page.text[-3000:]
    assert html.unescape(shown).startswith(message), shown
    assert (await stored(rt))["versions"] == 0
    assert "Publish a version" in page.text  # the form again, filled in
    assert 'value="Data Processing Agreement"' in page.text or field == "title"


async def test_a_label_used_already_comes_back_beside_the_version(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    await publish(client, ops, kind="dpa")
    token = await signed_in(client, rt, await staff(rt))
    page = await client.post(PAGE, data=form(token))
    assert page.status_code == 400
    assert "has a version '2026-02' already" in html.unescape(
        field_error(page, "version") or "")
    assert (await stored(rt))["versions"] == 1
