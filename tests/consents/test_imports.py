"""Importing a CSV of consent events: every row checked as a request body is; the good
rows imported (a transaction a chunk), each bad one reported by its row, column and
reason; a file with no good row imports nothing; a file that is not CSV, empty, too
long, or with a header that is not the documented one is refused whole."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, assert_problem
from tests.consents.helpers import EMAIL, NUMBER, SHA, audited, event_count, history
from tidings.consents import api, imports
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

HEADER = ("number,email,channel,purpose,mechanism,source,evidence_ref,text_version,"
          "text_sha256,captured_at")
GOOD = f"{NUMBER},,sms,marketing,opt_in,web_form,form 1,v3,{SHA},2025-06-01T10:00:00Z"


def csv_of(*rows: str, header: str = HEADER) -> bytes:
    return "\r\n".join([header, *rows]).encode() + b"\r\n"


async def upload(client: httpx.AsyncClient, tenant: Tenant, raw: bytes,
                 content_type: str = "text/csv") -> httpx.Response:
    return await client.post("/v1/consents/imports", content=raw,
                             headers={**tenant.headers, "Content-Type": content_type})


def reasons(errors: list[dict[str, Any]]) -> list[tuple[int, str | None, str]]:
    return [(e["row"], e["column"], e["code"]) for e in errors]


async def test_good_rows_are_imported_and_each_bad_one_reported_by_row(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    raw = csv_of(
        GOOD,                                                               # row 2
        f"{NUMBER},,sms,marketing,opt_in,web_form,,,,",                     # 3: no proof
        f",{EMAIL},email,marketing,soft_opt_in,import,order 55,,,",         # 4
        "+12025550174,,sms,marketing,opt_in,,form 2,,,",                   # 5: no source
        "+12025550175,,sms,newsletter,opt_in,api,form 3,,,",               # 6: no purpose
        "+12025550176,,sms,marketing,soft_opt_in,api,form 4,,,",           # 7
        f",{EMAIL},sms,marketing,opt_in,api,form 5,,,",                     # 8
        f"+12025550177,,sms,marketing,opt_in,api,form 6,,{SHA[:10]},",      # 9
        "+12025550178,,sms,marketing,opt_in,api,form 7,,,2027-01-01T00:00:00Z",  # 10
        "+1 202 555 017,,sms,marketing,opt_in,api,form 8,,,",              # 11
        f"{NUMBER},{EMAIL},sms,marketing,opt_in,api,form 9,,,",             # 12
        "",                                                                 # blank line
        f"{NUMBER},,sms,marketing,opt_out,keyword,STOP,,,,extra",           # 14: a cell more
        f"{NUMBER},,sms,transactional,opt_out,keyword,STOP ALL,,,",         # 15
    )
    response = await upload(client, acme, raw)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["imported"], answer["refused"]) == (3, 10)
    assert reasons(answer["errors"]) == [
        (3, "evidence_ref", "evidence_ref_missing"),
        (5, "source", "source_missing"),
        (6, "purpose", "invalid_purpose"),
        (7, "mechanism", "soft_opt_in_email_only"),
        (8, "email", "subject_channel_mismatch"),
        (9, "text_sha256", "invalid_text_sha256"),
        (10, "captured_at", "captured_at_in_future"),
        (11, "number", "invalid_phone_number"),
        (12, None, "invalid_subject"),
        (14, None, "too_many_cells"),
    ]
    assert all(e["detail"] for e in answer["errors"])

    shown = await history(client, acme)
    assert [(e["purpose"], e["mechanism"], e["source"], e["evidence_ref"])
            for e in shown["events"]] == [
        ("marketing", "opt_in", "web_form", "form 1"),
        ("transactional", "opt_out", "keyword", "STOP ALL")]
    assert shown["events"][0]["captured_at"].startswith("2025-06-01T10:00:00")
    assert shown["events"][0]["recorded_at"].startswith(clock.now().date().isoformat())
    assert shown["events"][0]["captured_by"] == f"api_key:{acme.made.api_key_id}"
    email = await history(client, acme, email=EMAIL)
    assert [s["in_force"] for s in email["state"]] == [True]
    assert await event_count(rt) == 3
    assert len(await audited(rt, acme.id)) == 3


async def test_a_file_of_only_bad_rows_imports_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    raw = csv_of(f"{NUMBER},,sms,marketing,opt_in,web_form,,,,",
                 f"{NUMBER},,fax,marketing,opt_in,web_form,form,,,")
    response = await upload(client, acme, raw)
    assert_problem(response, 400, "no_rows_imported")
    problem = response.json()
    assert problem["refused"] == 2
    assert reasons(problem["row_errors"]) == [(2, "evidence_ref", "evidence_ref_missing"),
                                              (3, "channel", "invalid_channel")]
    assert await event_count(rt) == 0
    assert await audited(rt, acme.id) == []


@pytest.mark.parametrize(("raw", "code"), [
    (b"", "empty_file"),
    (b"  \r\n\r\n", "empty_file"),
    (csv_of(), "empty_file"),  # a header, no rows
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "invalid_csv"),
    ("number,channel\n+12025550173,sms\n".encode("utf-16"), "invalid_csv"),
    (b'{"number": "+12025550173", "channel": "sms"}', "unknown_csv_column"),
    (csv_of(GOOD, header=HEADER + ",shoe_size"), "unknown_csv_column"),
    (csv_of(GOOD, header=HEADER.replace("source,", "")), "csv_columns_missing"),
    (csv_of(GOOD, header=HEADER.replace("number,email,", "")), "csv_columns_missing"),
    (csv_of(GOOD, header=HEADER.replace("captured_at", "channel")), "duplicate_csv_column"),
    (csv_of('"+12025550173,sms'), "invalid_csv"),  # a quote never closed
])
async def test_a_file_refused_whole_imports_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, raw: bytes, code: str) -> None:
    assert_problem(await upload(client, acme, raw), 400, code)
    assert await event_count(rt) == 0


async def test_too_many_rows_or_bytes_import_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    assert_problem(await upload(client, acme, csv_of(*[GOOD] * 4)), 400, "too_many_rows")
    assert (await upload(client, acme, csv_of(*[GOOD] * 3))).status_code == 201
    monkeypatch.setattr(imports, "MAX_ROWS", 100_000)
    huge = csv_of(*[GOOD] * (rt.settings.max_body_bytes // len(GOOD) + 1))
    assert_problem(await upload(client, acme, huge), 413, "payload_too_large")
    assert await event_count(rt) == 3


async def test_a_large_file_goes_in_chunks_and_lists_the_first_errors(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "IMPORT_CHUNK", 2)
    monkeypatch.setattr(api, "ERRORS_LISTED", 2)
    good = [f"+1202555{n:04d},,sms,marketing,opt_in,import,row {n},,," for n in range(150, 155)]
    bad = [f"+1202555{n:04d},,sms,marketing,opt_in,import,,,," for n in range(160, 163)]
    response = await upload(client, acme, csv_of(*good, *bad))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["imported"], answer["refused"]) == (5, 3)
    assert [e["row"] for e in answer["errors"]] == [7, 8]
    assert await event_count(rt) == 5
    assert len(await audited(rt, acme.id)) == 5


async def test_a_form_upload_works_as_a_csv_body_does(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    made = await client.post("/v1/consents/imports", headers=acme.headers,
                             files={"file": ("consents.csv", csv_of(GOOD), "text/csv")})
    assert made.status_code == 201, made.text
    assert made.json() == {"imported": 1, "refused": 0, "errors": []}
    no_file = await client.post("/v1/consents/imports", headers=acme.headers,
                                files={"other": ("x.csv", csv_of(GOOD), "text/csv")})
    assert_problem(no_file, 400, "file_missing")
    as_json = await client.post("/v1/consents/imports", headers=acme.headers,
                                json={"rows": [GOOD]})
    assert_problem(as_json, 400, "unsupported_media_type")
    assert await event_count(rt) == 1


async def test_another_account_imports_into_itself_only(
        client: httpx.AsyncClient, acme: Tenant, globex: Tenant) -> None:
    assert (await upload(client, globex, csv_of(GOOD))).status_code == 201
    assert (await history(client, acme))["events"] == []
    assert len((await history(client, globex))["events"]) == 1
