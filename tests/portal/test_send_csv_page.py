"""Sending to a CSV from the portal: every row checked, a file with a bad row sent not
at all (each bad row shown with its line), a good one sent once as a batch."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant, stored_counts
from tests.portal.pages import field_error, signed_in
from tests.users.people import person
from tidings.runtime import Runtime

GOOD = "to,name\n+12025550173,Ann\n+12025550174,Bo\n"


async def upload(client: httpx.AsyncClient, token: str, content: bytes | str, *,
                 body: str = "Hi {name}", sender: str = "Acme",
                 filename: str = "list.csv") -> httpx.Response:
    raw = content.encode() if isinstance(content, str) else content
    return await client.post("/portal/send/csv", data={"_csrf": token, "from": sender,
                                                       "body": body},
                             files={"file": (filename, raw, "text/csv")})


async def messages(rt: Runtime) -> int:
    return (await stored_counts(rt))["messages"]


async def test_a_good_list_is_sent_once(client: httpx.AsyncClient, rt: Runtime,
                                        acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    assert (await client.get("/portal/send/csv")).status_code == 200
    sent = await upload(client, token, GOOD)
    assert sent.status_code == 200, sent.text[:500]
    assert "2 messages accepted." in sent.text
    again = await upload(client, token, GOOD)  # the same file and form: a double submit
    assert "2 messages accepted." in again.text
    assert await messages(rt) == 2
    listed = (await client.get("/v1/messages", headers=acme.headers)).json()["data"]
    assert sorted(m["body"] for m in listed) == ["Hi Ann", "Hi Bo"]


async def test_a_list_with_bad_rows_shows_each_by_line_and_sends_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    bad = await upload(client, token, "to,name\n+12025550173,Ann\n,Bo\nnot-a-number,Cy\n")
    assert bad.status_code == 400
    assert 'id="rejections"' in bad.text
    assert "2 rows cannot be sent" in bad.text
    assert '<td class="num">3</td>' in bad.text
    assert '<td class="num">4</td>' in bad.text
    missing_variable = await upload(client, token, GOOD, body="Hi {surname}")
    assert missing_variable.status_code == 400
    assert 'id="rejections"' in missing_variable.text
    assert await messages(rt) == 0


async def test_garbage_files_and_fields_are_refused_beside_the_field(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    for content, expected in (("", "The file is empty."),
                              ("name,phone\nAnn,+12025550173\n", "to&#39; column"),
                              (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
                              ("to\n", "between 1 and"),
                              ("x" * (2 * 1024 * 1024 + 1), "larger than 2 MB")):
        answer = await upload(client, token, content)
        assert answer.status_code == 400, content[:20]
        error = field_error(answer, "file")
        assert error is not None, content[:20]
        assert expected in error, error
    no_file = await client.post("/portal/send/csv", data={"_csrf": token, "from": "Acme",
                                                           "body": "x"})
    assert field_error(no_file, "file") == "Choose a CSV file."
    empty_fields = await upload(client, token, GOOD, body="", sender="")
    assert field_error(empty_fields, "from")
    assert field_error(empty_fields, "body")
    no_token = await client.post("/portal/send/csv", data={"from": "Acme", "body": "x"},
                                 files={"file": ("l.csv", GOOD.encode(), "text/csv")})
    assert no_token.status_code == 403
    assert await messages(rt) == 0
