"""The consents page: a person's history and state found by number or address, an
event recorded from the form, a CSV imported with each refused row listed. Only the
roles with ``consents:manage`` may open it; garbage in any field is shown beside it and
writes nothing; another account's people are nobody here."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Tenant
from tests.consents.helpers import EMAIL, NUMBER, SHA, event_count, record
from tests.portal.pages import field_error, signed_in
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

HEADER = "number,email,channel,purpose,mechanism,source,evidence_ref"


def form(token: str, **fields: str) -> dict[str, str]:
    return {"_csrf": token, "subject_kind": "number", "subject": NUMBER, "channel": "sms",
            "purpose": "marketing", "mechanism": "opt_in", "source": "web_form",
            "evidence_ref": "form 81", "text_version": "v2", "text_sha256": SHA, **fields}


def state_rows(page: httpx.Response) -> dict[tuple[str, str], str]:
    """The state table: (channel, purpose) → what its row says of consent."""
    found = re.findall(r'<tr data-channel="([a-z]+)" data-purpose="([a-z]+)">(.*?)</tr>',
                       page.text, re.S)
    return {(channel, purpose): "not in force" if "not in force" in row else "in force"
            for channel, purpose, row in found}


async def test_a_developer_records_an_opt_in_and_finds_the_person_in_force(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    developer = await person(rt, acme.id, "developer")
    token = await signed_in(client, rt, developer)
    empty = await client.get("/portal/consents")
    assert empty.status_code == 200
    assert 'href="/portal/consents" aria-current="page"' in empty.text

    made = await client.post("/portal/consents", data=form(token))
    assert made.status_code == 303, made.text[:600]
    assert made.headers["location"] == (
        "/portal/consents?find_kind=number&find=%2B12025550173&recorded=1")
    page = await client.get(made.headers["location"])
    assert "The consent event is recorded." in page.text
    assert state_rows(page) == {("sms", "marketing"): "in force"}
    assert "form 81" in page.text
    shown = (await client.get("/v1/consents", headers=acme.headers,
                              params={"number": NUMBER})).json()
    [event] = shown["events"]
    assert (event["evidence_ref"], event["text_sha256"], event["source"]) == (
        "form 81", SHA, "web_form")
    assert event["captured_by"].startswith("user:")

    clock.advance(3600)
    await signed_in(client, rt, developer)  # a new session: the first one idled out
    await record(client, acme, mechanism="opt_out", source="keyword", evidence_ref="STOP")
    later = await client.get("/portal/consents", params={"find_kind": "number",
                                                         "find": "+1 202-555-0173"})
    assert state_rows(later) == {("sms", "marketing"): "not in force"}
    only_email = await client.get("/portal/consents", params={
        "find_kind": "email", "find": EMAIL, "find_channel": "email"})
    assert "No consent events for this person." in only_email.text


@pytest.mark.parametrize("role", ["owner", "admin", "compliance"])
async def test_the_roles_with_consents_manage_open_it(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str) -> None:
    await signed_in(client, rt, await person(rt, acme.id, role))
    assert (await client.get("/portal/consents")).status_code == 200


@pytest.mark.parametrize("role", ["support", "billing", "analyst"])
async def test_a_role_without_consents_manage_gets_the_refusal_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, role))
    assert (await client.get("/portal/consents")).status_code == 403
    refused = await client.post("/portal/consents", data=form(token))
    assert refused.status_code == 403
    assert await event_count(rt) == 0


GARBAGE: list[tuple[dict[str, str], str]] = [
    ({"subject_kind": "fax"}, "subject_kind"),
    ({"subject": ""}, "subject"),
    ({"subject": "+1 202 555 017"}, "subject"),
    ({"subject": "x" * 300}, "subject"),
    ({"subject": EMAIL}, "subject"),  # an address for the sms channel
    ({"subject_kind": "email", "subject": EMAIL, "channel": "sms"}, "subject"),
    ({"channel": "fax"}, "channel"),
    ({"purpose": "newsletter"}, "purpose"),
    ({"mechanism": "erased"}, "mechanism"),
    ({"mechanism": "soft_opt_in"}, "mechanism"),  # e-mail only
    ({"source": "purchased_list"}, "source"),
    ({"evidence_ref": "   "}, "evidence_ref"),
    ({"evidence_ref": "e" * 501}, "evidence_ref"),
    ({"evidence_ref": "bad\x00byte"}, "evidence_ref"),
    ({"text_version": "v" * 41}, "text_version"),
    ({"text_sha256": "not a hash"}, "text_sha256"),
    ({"text_sha256": SHA.upper()}, "text_sha256"),
]


@pytest.mark.parametrize(("fields", "where"), GARBAGE)
async def test_garbage_in_each_field_is_shown_beside_it_and_writes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, fields: dict[str, str],
        where: str) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    page = await client.post("/portal/consents", data=form(token, **fields))
    assert page.status_code == 400, page.text[:600]
    assert field_error(page, where), page.text[:3000]
    assert await event_count(rt) == 0


@pytest.mark.parametrize(("params", "where"), [
    ({"find_kind": "fax", "find": NUMBER}, "find_kind"),
    ({"find_kind": "number", "find": "12025550173"}, "find"),
    ({"find_kind": "email", "find": "nobody"}, "find"),
    ({"find_kind": "number", "find": NUMBER, "find_channel": "fax"}, "find_channel"),
    ({"find_kind": "number", "find": NUMBER, "find_channel": "email"}, "find_channel"),
])
async def test_garbage_in_the_search_is_shown_beside_its_field(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, params: dict[str, str],
        where: str) -> None:
    await signed_in(client, rt, await person(rt, acme.id, "owner"))
    page = await client.get("/portal/consents", params=params)
    assert page.status_code == 400
    assert field_error(page, where)


async def test_another_accounts_person_is_nobody_here(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await record(client, globex)
    await signed_in(client, rt, await person(rt, acme.id, "owner"))
    page = await client.get("/portal/consents", params={"find_kind": "number",
                                                        "find": NUMBER})
    assert "No consent events for this person." in page.text
    assert "form-7731" not in page.text


async def upload(client: httpx.AsyncClient, token: str, raw: bytes,
                 name: str = "consents.csv") -> httpx.Response:
    return await client.post("/portal/consents/imports", data={"_csrf": token},
                             files={"file": (name, raw, "text/csv")})


def report_rows(page: httpx.Response) -> list[tuple[str, str]]:
    body = re.search(r'<section id="import-report".*?</section>', page.text, re.S)
    assert body, page.text[:2000]
    return re.findall(r'<td class="num">(\d+)</td><td>([^<]*)</td>', body.group(0))


async def test_a_csv_is_imported_and_each_refused_row_listed(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "compliance"))
    raw = (f"{HEADER}\n{NUMBER},,sms,marketing,opt_in,import,list A row 1\n"
           f"+12025550174,,sms,marketing,opt_in,import,\n"
           f",{EMAIL},email,marketing,soft_opt_in,import,order 5\n").encode()
    page = await upload(client, token, raw)
    assert page.status_code == 200, page.text[:600]
    assert "Imported: 2; refused: 1" in page.text
    assert report_rows(page) == [("3", "evidence_ref")]
    assert await event_count(rt) == 2

    only_bad = await upload(client, token, f"{HEADER}\n{NUMBER},,fax,marketing,"
                                           "opt_in,import,x\n".encode())
    assert only_bad.status_code == 400
    assert "nothing was imported" in only_bad.text
    assert report_rows(only_bad) == [("2", "channel")]
    assert await event_count(rt) == 2


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "The file is empty."),
    (b"\xff\xfe\x00garbage", "The file is not CSV"),
    (b"to,body\n+12025550173,hi\n", "Unknown column"),
])
async def test_a_file_refused_whole_is_shown_beside_the_file_field(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, raw: bytes,
        message: str) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    page = await upload(client, token, raw)
    assert page.status_code == 400
    assert (field_error(page, "file") or "").startswith(message), page.text[:2000]
    assert await event_count(rt) == 0


async def test_an_upload_without_a_file_or_too_large_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    page = await client.post("/portal/consents/imports", data={"_csrf": token})
    assert page.status_code == 400
    assert field_error(page, "file") == "Choose a CSV file."
    monkeypatch.setattr(rt.settings, "max_body_bytes", 1024 * 1024)
    big = (HEADER + "\n").encode() + b"x" * (1024 * 1024)
    page = await upload(client, token, big)
    assert page.status_code == 400
    assert field_error(page, "file") == "The file is larger than 1 MB: split it."
    assert await event_count(rt) == 0
