"""A data subject's bundles on both databases: the copy of their data (DSR-1, Art. 15),
the export to take elsewhere and its re-import (DSR-5, Art. 20), and an erased person's
bundle; each JSON bundle checked against its published schema."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select, update

from tests.conftest import TEST_ACTOR, Tenant, assign, make_tenant, settle, stored_counts
from tidings.accounts.models import AccountStatus
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging.inbound import receive_inbound
from tidings.messaging.models import Message, MessageEvent
from tidings.privacy import bundles
from tidings.privacy.bundles import (
    SubjectRecords,
    access_bundle,
    collect_subject,
    portability_bundle,
    processing_info,
    render_html,
    schema,
)
from tidings.privacy.erasure import erase_subject
from tidings.privacy.portability import IMPORT_EVENT_SOURCE, import_bundle
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.web.errors import Forbidden, InvalidRequest, NotFound

# On PostgreSQL, the key store in a PostgreSQL database of its own.
pytestmark = pytest.mark.pg_keystore

CANARY = "+12025550173"
OTHER = "+12025550188"
ACME_NUMBER, GLOBEX_NUMBER = "+12025550142", "+12025550143"
GENERATED = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
PORTABLE_KEYS = {"id", "direction", "channel", "status", "to", "from", "created_at",
                 "updated_at"}


def canary_body() -> str:
    return f"CANARY-{uuid.uuid4()}"


def canary_email() -> str:
    return f"canary-{uuid.uuid4().hex[:12]}@example.test"


def validator(name: str) -> Draft202012Validator:
    published = schema(name)
    Draft202012Validator.check_schema(published)
    return Draft202012Validator(published, format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_valid(name: str, bundle: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(
        json.loads(json.dumps(bundle)))]  # as a file holds it: JSON types only
    assert not errors, errors


async def send(client: httpx.AsyncClient, clock: FakeClock, tenant: Tenant,
               **message: Any) -> str:
    """One message through the API, a second after the one before (an order to check)."""
    clock.advance(1)
    response = await client.post("/v1/messages", headers=tenant.headers,
                                 json={"from": "Acme", **message})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def receive(rt: Runtime, clock: FakeClock, *, sender: str, to: str, body: str) -> str:
    clock.advance(1)
    created = await receive_inbound(rt, sender=sender, to=to, body=body, channel="sms",
                                    actor=TEST_ACTOR)
    return str(created.row["id"])


async def access(rt: Runtime, tenant: Tenant, address: str,
                 name: str = "Acme") -> tuple[SubjectRecords, dict[str, Any]]:
    records = await collect_subject(rt, tenant=tenant.id, address=address)
    bundle = access_bundle(records, request_id="dsr_test", generated_at=GENERATED,
                           processing=processing_info(tenant_name=name,
                                                      connectors=records.connectors,
                                                      message_body_days=90))
    return records, bundle


async def portable(rt: Runtime, tenant: Tenant, address: str) -> dict[str, Any]:
    records = await collect_subject(rt, tenant=tenant.id, address=address)
    return portability_bundle(records, request_id="dsr_test", generated_at=GENERATED)


async def a_person_in_two_tenants(client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
                                  acme: Tenant, globex: Tenant) -> dict[str, Any]:
    """CANARY in acme: three SMS, a WhatsApp template, and one SMS they sent; the same
    number in globex, and another person in acme, with messages of their own."""
    await assign(rt, acme.id, ACME_NUMBER)
    await assign(rt, globex.id, GLOBEX_NUMBER)
    bodies = [canary_body() for _ in range(3)]
    sms = [await send(client, clock, acme, to=CANARY, body=body) for body in bodies]
    whatsapp = await send(client, clock, acme, to=CANARY, channel="whatsapp",
                          body="Order 42 is on its way.", **{"from": ACME_NUMBER},
                          template={"name": "order_update", "language": "en_US",
                                    "variables": ["Ann", "42"]})
    reply = canary_body()
    inbound = await receive(rt, clock, sender=CANARY, to=ACME_NUMBER, body=reply)
    elsewhere = [await send(client, clock, globex, to=CANARY, body="globex's"),
                 await receive(rt, clock, sender=CANARY, to=GLOBEX_NUMBER, body="to globex")]
    stranger = await send(client, clock, acme, to=OTHER, body="not about them")
    await settle(rt, clock, seconds=10)
    return {"sms": sms, "bodies": bodies, "whatsapp": whatsapp, "inbound": inbound,
            "reply": reply, "elsewhere": elsewhere, "stranger": stranger}


# --------------------------------------------------------------------------- DSR-1


async def test_dsr_1_the_access_bundle_has_exactly_the_tenants_items(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    made = await a_person_in_two_tenants(client, rt, clock, acme, globex)

    records, bundle = await access(rt, acme, "+1 (202) 555-0173")  # any way it is written

    assert_valid("access-v1", bundle)
    ids = [m["id"] for m in bundle["messages"]]
    assert ids == [*made["sms"], made["whatsapp"], made["inbound"]]  # oldest first
    assert not set(ids) & {*made["elsewhere"], made["stranger"]}
    assert bundle["subject"] == {"number": CANARY}
    assert bundle["consents"] == []
    by_id = {m["id"]: m for m in bundle["messages"]}
    for message_id, body in zip(made["sms"], made["bodies"], strict=True):
        shown = by_id[message_id]
        assert (shown["direction"], shown["to"], shown["from"], shown["body"]) == (
            "outbound", CANARY, "Acme", body)
        assert (shown["channel"], shown["connector"], shown["erased"]) == ("sms", "sandbox",
                                                                           False)
        assert shown["status"] in {"sent", "delivered"}
    assert by_id[made["whatsapp"]]["template"] == {
        "name": "order_update", "language": "en_US", "variables": ["Ann", "42"]}
    assert (by_id[made["inbound"]]["direction"], by_id[made["inbound"]]["from"],
            by_id[made["inbound"]]["to"], by_id[made["inbound"]]["body"]) == (
        "inbound", CANARY, ACME_NUMBER, made["reply"])
    # Nothing of globex's in any form: its message's body is nowhere in the file.
    assert "globex" not in json.dumps(bundle)
    assert "sandbox" in [r["name"] for r in bundle["processing_info"]["recipients"]]
    assert records.connectors == sorted({m["connector"] for m in bundle["messages"]
                                         if m["connector"]})


async def test_dsr_1_an_email_person_has_their_subject_and_html(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    address = canary_email()
    email = {"channel": "email", "to": address, "from": "news@acme.example",
             "subject": "Your order", "body": "It ships today.",
             "html": "<p>It ships <b>today</b>.</p>"}
    mine = await send(client, clock, acme, **email)
    await send(client, clock, globex, **{**email, "subject": "Globex news"})

    _, bundle = await access(rt, acme, address.replace("example.test", "Example.TEST"))

    assert_valid("access-v1", bundle)
    assert bundle["subject"] == {"email": address}
    [message] = bundle["messages"]
    assert (message["id"], message["channel"], message["subject"], message["html"]) == (
        mine, "email", "Your order", "<p>It ships <b>today</b>.</p>")


def test_dsr_1_processing_info_states_each_category_once_with_its_retention() -> None:
    info = processing_info(tenant_name="Acme", connectors=["smsc-b", "sandbox", "smsc-b"],
                           message_body_days=30)
    categories = [c["category"] for c in info["data_categories"]]
    assert {"user.contact.phone_number", "user.contact.email",
            "user.content.private"} <= set(categories)
    assert [r["category"] for r in info["retention"]] == categories
    assert [r["name"] for r in info["recipients"]] == ["sandbox", "smsc-b"]
    assert {r["right"] for r in info["rights"]} >= {
        "access", "rectification", "erasure", "restriction", "portability", "objection"}
    assert {s["source"] for s in info["sources"]} >= {"Acme (the client)", "You"}
    assert info["controller"] == "Acme"
    assert info["retention"][0]["period"].startswith("30 days after each message")


async def test_dsr_1_the_html_is_a_readable_document_with_every_value_escaped(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    hostile = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"
    await send(client, clock, acme, to=CANARY, body=hostile)
    await send(client, clock, acme, to=CANARY, body="plain words")

    _, bundle = await access(rt, acme, CANARY, name="Acme <b>Corp</b>")
    page = render_html(bundle)

    assert page.startswith("<!DOCTYPE html>")
    assert "<h1>Your data at Acme &lt;b&gt;Corp&lt;/b&gt;</h1>" in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img" in page
    assert "<script" not in page
    assert "<img" not in page
    assert "plain words" in page
    # The categories' table and the messages' table, each with its header row.
    assert page.count("<tr>") == 2 + len(bundle["processing_info"]["data_categories"]) + 2
    assert "http://" not in page
    assert "https://" not in page  # standalone: nothing fetched from anywhere


async def test_a_person_with_many_messages_is_read_page_by_page(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundles, "PAGE_ROWS", 2)
    sent = []
    for n in range(5):  # the same instant: the id orders them
        response = await client.post("/v1/messages", headers=acme.headers,
                                     json={"from": "Acme", "to": CANARY, "body": f"n{n}"})
        sent.append(response.json()["id"])
    clock.advance(1)
    later = await send(client, clock, acme, to=CANARY, body="later")

    records = await collect_subject(rt, tenant=acme.id, address=CANARY)

    assert [m.id for m in records.messages] == [*sorted(sent), later]


async def test_a_message_stored_before_subject_keys_is_in_the_bundle(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    message_id = await send(client, clock, acme, to=CANARY, body="from before")
    keys = await rt.vault.keys_for(acme.id)
    async with rt.db.transaction(tenant=SYSTEM) as session:  # as an older version stored it
        await session.execute(update(Message).where(Message.id == message_id).values(
            subject_key=None, to_enc=keys.encrypt(CANARY, field="messages.to"),
            from_enc=keys.encrypt("Acme", field="messages.from"),
            body_enc=keys.encrypt("from before", field="messages.body")))

    _, bundle = await access(rt, acme, CANARY)

    assert [(m["id"], m["body"]) for m in bundle["messages"]] == [(message_id, "from before")]


async def test_an_invalid_address_is_refused(rt: Runtime, acme: Tenant) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await collect_subject(rt, tenant=acme.id, address="not a number")
    assert refused.value.code == "invalid_phone_number"


def test_only_the_two_published_schemas_are_known() -> None:
    for name in ("access-v1", "portability-v1"):
        published = schema(name)
        Draft202012Validator.check_schema(published)
        assert published["$id"].endswith(f"/{name}.json")
        assert published["properties"]["schema"]["const"] == published["$id"]
        published["title"] = "changed"  # a copy: the next caller gets the file's
        assert schema(name)["title"] != "changed"
    for name in ("access-v2", "../schemas/access-v1", "access-v1.json", ""):
        with pytest.raises(KeyError):
            schema(name)


# --------------------------------------------------------------------------- erased


async def test_an_erased_persons_bundle_is_empty_and_still_valid(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await send(client, clock, acme, to=CANARY, body=canary_body())
    assert await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)

    _, bundle = await access(rt, acme, CANARY)

    assert bundle["messages"] == []
    assert_valid("access-v1", bundle)
    assert "No message of yours is stored." in render_html(bundle)


async def test_messages_whose_key_is_gone_show_no_content_rather_than_crashing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    """Rows a restored backup brought back before the ledger's replay (or an erasure
    between the read and the decryption): found by their index, their key destroyed."""
    await assign(rt, acme.id, ACME_NUMBER)
    body = canary_body()
    sent = await send(client, clock, acme, to=CANARY, body=body)
    received = await receive(rt, clock, sender=CANARY, to=ACME_NUMBER, body=body)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        key_id = await session.scalar(select(Message.subject_key).where(Message.id == sent))
    assert key_id is not None
    assert await rt.vault.erase_subject(acme.id, key_id)  # the key only, rows untouched

    records, bundle = await access(rt, acme, CANARY)
    exported = portability_bundle(records, request_id="dsr_test", generated_at=GENERATED)

    assert [m["id"] for m in bundle["messages"]] == [sent, received]
    for message in bundle["messages"]:
        assert message["erased"] is True
        assert (message["to"], message["from"], message["body"], message["subject"]) == (
            None, None, None, None)
    assert_valid("access-v1", bundle)
    assert_valid("portability-v1", exported)
    assert body not in json.dumps(bundle) + render_html(bundle)
    assert "erased" in render_html(bundle)


# --------------------------------------------------------------------------- DSR-5


async def test_dsr_5_the_export_validates_and_has_nothing_inferred(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    made = await a_person_in_two_tenants(client, rt, clock, acme, globex)

    exported = await portable(rt, acme, CANARY)

    assert_valid("portability-v1", exported)
    assert set(exported) == {"schema", "format_version", "request_id", "generated_at",
                             "subject", "messages"}
    assert exported["format_version"] == 1
    by_id = {m["id"]: m for m in exported["messages"]}
    assert set(by_id) == {*made["sms"], made["whatsapp"], made["inbound"]}
    for message in exported["messages"]:
        if message["direction"] == "inbound":
            assert set(message) == PORTABLE_KEYS | {"body"}
        else:  # what was sent to them is metadata only: the text is the account's
            assert set(message) == PORTABLE_KEYS
    assert by_id[made["inbound"]]["body"] == made["reply"]
    text = json.dumps(exported)
    for absent in (*made["bodies"], "order_update", "sandbox", "segments", "encoding",
                   "error_code", "score"):
        assert absent not in text
    page = render_html(exported)  # the person can read their export too
    assert made["reply"] in page
    assert page.count("not included: the text is the sender") == 4


async def test_dsr_5_reimporting_into_an_empty_tenant_reproduces_the_counts(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    await a_person_in_two_tenants(client, rt, clock, acme, globex)
    exported = await portable(rt, acme, CANARY)
    empty = await make_tenant(rt, "Initech")
    jobs_before = (await stored_counts(rt))["jobs"]

    imported = await import_bundle(rt, tenant=empty.id, bundle=exported, actor=TEST_ACTOR)

    def counts(bundle: dict[str, Any]) -> Counter[tuple[str, str, str]]:
        return Counter((m["direction"], m["channel"], m["status"]) for m in bundle["messages"])

    assert (imported.outbound, imported.inbound) == (4, 1)
    again = await portable(rt, empty, CANARY)
    assert counts(again) == counts(exported)
    assert_valid("portability-v1", again)

    def without_ids(bundle: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if k != "id"} for m in bundle["messages"]]

    assert without_ids(again) == without_ids(exported)  # the same records, times and all
    assert (await stored_counts(rt))["jobs"] == jobs_before  # history, never sent
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        events = (await session.scalars(select(MessageEvent).where(
            MessageEvent.tenant_id == empty.id))).all()
        audit = (await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == empty.id, AuditEvent.table_name == "messages"))).all()
    assert {e.source for e in events} == {IMPORT_EVENT_SOURCE}
    assert len(events) == len(audit) == imported.total
    assert {(a.action, tuple(a.fields), a.actor_id) for a in audit} == {
        ("create", ("body", "from", "to"), "tests")}
    # Found and erased like any other message of theirs.
    erased = await erase_subject(rt, tenant=empty.id, address=CANARY, actor=TEST_ACTOR)
    assert erased is not None
    assert erased.messages == imported.total


async def test_dsr_5_an_email_persons_export_reimports(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    address = canary_email()
    await send(client, clock, acme, channel="email", to=address, subject="Hi", body="Hello",
               **{"from": "news@acme.example"})
    exported = await portable(rt, acme, address)

    imported = await import_bundle(rt, tenant=globex.id, bundle=exported, actor=TEST_ACTOR)

    assert (imported.outbound, imported.inbound) == (1, 0)
    _, bundle = await access(rt, globex, address)
    [message] = bundle["messages"]
    assert (message["to"], message["from"], message["body"], message["subject"]) == (
        address, "news@acme.example", "", None)


def a_bundle() -> dict[str, Any]:
    return {
        "schema": bundles.PORTABILITY_SCHEMA_ID, "format_version": 1, "request_id": "dsr_1",
        "generated_at": "2026-02-01T12:00:00+00:00", "subject": {"number": CANARY},
        "messages": [
            {"id": "msg_a", "direction": "outbound", "channel": "sms", "status": "delivered",
             "to": CANARY, "from": "Acme", "created_at": "2026-01-01T10:00:00+00:00",
             "updated_at": "2026-01-01T10:00:05+00:00"},
            {"id": "msg_b", "direction": "inbound", "channel": "sms", "status": "received",
             "to": ACME_NUMBER, "from": CANARY, "body": "Hello",
             "created_at": "2026-01-01T11:00:00Z", "updated_at": "2026-01-01T11:00:00Z"},
        ]}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = bundle
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = bundle
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
    return change


# (the change, whether the published schema can tell: some rules span fields)
GARBAGE = {
    "format_version as a string": (_set("format_version", "1"), True),
    "format_version true": (_set("format_version", True), True),
    "an unknown version": (_set("format_version", 2), True),
    "another schema": (_set("schema", "https://example.test/other.json"), True),
    "messages an object": (_set("messages", {"0": {}}), True),
    "a body that is a number": (_set("messages.1.body", 42), True),
    "a time that is a number": (_set("messages.0.created_at", 1767261600), True),
    "a time without offset": (_set("messages.0.created_at", "2026-01-01T10:00:00"), True),
    "a time that is no time": (_set("messages.0.created_at", "yesterday+00:00"), False),
    "no subject": (_drop("subject"), True),
    "no recipient": (_drop("messages.0.to"), True),
    "no request id": (_drop("request_id"), True),
    "an unknown field": (_set("messages.0.score", 0.9), True),
    "an unknown top-level field": (_set("inferred", {}), True),
    "a huge body": (_set("messages.1.body", "x" * 100_001), True),
    "a huge address": (_set("messages.0.from", "A" * 255), True),
    "a huge request id": (_set("request_id", "r" * 101), True),
    "a huge id": (_set("messages.0.id", "m" * 41), True),
    "a huge time": (_set("generated_at", "2026-01-01T10:00:00" + "0" * 40 + "+00:00"), True),
    "an unknown status": (_set("messages.0.status", "read"), True),
    "an outbound message received": (_set("messages.0.status", "received"), True),
    "an outbound message with a body": (_set("messages.0.body", "the account's"), True),
    "an inbound message without a body": (_drop("messages.1.body"), True),
    "both a number and an email": (_set("subject.email", "a@example.test"), True),
    "a subject that is no number": (_set("subject", {"number": "12345"}), True),
    "a message to someone else": (_set("messages.0.to", OTHER), False),
    "a message from someone else": (_set("messages.1.from", OTHER), False),
    "an email to a phone number": (_set("messages.0.channel", "email"), False),
    "the same id twice": (_set("messages.1.id", "msg_a"), False),
    "updated before created": (_set("messages.0.updated_at", "2025-01-01T00:00:00Z"), False),
}


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_dsr_5_garbage_is_refused_and_nothing_written(
        rt: Runtime, acme: Tenant, case: str) -> None:
    change, schema_tells = GARBAGE[case]
    bundle = a_bundle()
    assert_valid("portability-v1", bundle)  # the good one, before the change
    change(bundle)
    before = await stored_counts(rt)
    audit_before = await audit_count(rt)

    with pytest.raises(InvalidRequest) as refused:
        await import_bundle(rt, tenant=acme.id, bundle=bundle, actor=TEST_ACTOR)

    assert refused.value.code in {"invalid_bundle", "unsupported_bundle_version",
                                  "invalid_phone_number"}
    assert "x" * 50 not in refused.value.detail  # the fault's place, never its value
    assert await stored_counts(rt) == before
    assert await audit_count(rt) == audit_before
    if schema_tells:
        assert not validator("portability-v1").is_valid(bundle)


async def test_dsr_5_a_bundle_that_is_no_object_is_refused(rt: Runtime, acme: Tenant) -> None:
    for garbage in ([], "bundle", None, 1):
        with pytest.raises(InvalidRequest):
            await import_bundle(rt, tenant=acme.id, bundle=garbage,  # type: ignore[arg-type]
                                actor=TEST_ACTOR)


async def test_dsr_5_the_good_bundle_imports_as_given(rt: Runtime, acme: Tenant) -> None:
    imported = await import_bundle(rt, tenant=acme.id, bundle=a_bundle(), actor=TEST_ACTOR)

    assert (imported.outbound, imported.inbound) == (1, 1)
    _, bundle = await access(rt, acme, CANARY)
    assert [(m["direction"], m["status"], m["to"], m["from"], m["body"], m["created_at"])
            for m in bundle["messages"]] == [
        ("outbound", "delivered", CANARY, "Acme", "", "2026-01-01T10:00:00+00:00"),
        ("inbound", "received", ACME_NUMBER, CANARY, "Hello", "2026-01-01T11:00:00+00:00")]


async def test_an_import_into_no_account_or_a_terminated_one_writes_nothing(
        rt: Runtime) -> None:
    closed = await make_tenant(rt, "Closed", status=AccountStatus.TERMINATED)
    before = await stored_counts(rt)
    with pytest.raises(NotFound):
        await import_bundle(rt, tenant="acc_nobody", bundle=a_bundle(), actor=TEST_ACTOR)
    with pytest.raises(Forbidden):
        await import_bundle(rt, tenant=closed.id, bundle=a_bundle(), actor=TEST_ACTOR)
    assert await stored_counts(rt) == before


async def audit_count(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
