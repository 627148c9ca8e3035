"""The canary scan (issue 16, item 11) and the erasure checks it proves (DSR-3 1-3,
DSR-2, AUD-4) on both databases: a person is found in every reversible form while
their data lives, and nowhere, in no form, once they are erased; a log that holds
them is found; garbage is refused."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import TEST_ACTOR, Tenant, assign, settle
from tidings.cli.main import cli
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.messaging.inbound import receive_inbound
from tidings.privacy.scan import Canary, ScanReport, canary_forms, scan
from tidings.runtime import Runtime

pytestmark = pytest.mark.pg_keystore

CANARY = "+12025550173"
OURS = "+12025550100"


async def ask(client: httpx.AsyncClient, tenant: Tenant, type_: str) -> str:
    made = await client.post("/v1/privacy/requests", headers=tenant.headers, json={
        "type": type_, "subject": {"number": CANARY}})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def canary_everywhere(client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
                            acme: Tenant, text: str) -> None:
    """The person in every store acme has: messages both ways, a batch answer kept for
    retries, a request and its bundle, a legal hold released, a restriction lifted."""
    for body in (text, "second"):
        sent = await client.post("/v1/messages", headers=acme.headers,
                                 json={"to": CANARY, "from": "Acme", "body": body})
        assert sent.status_code == 201, sent.text
    batch = await client.post("/v1/messages/batch", headers={
        **acme.headers, "Idempotency-Key": "b-1"}, json={
        "from": "Acme", "body": "Hi", "recipients": [{"to": CANARY}]})
    assert batch.status_code == 200, batch.text
    await assign(rt, acme.id, OURS)
    await receive_inbound(rt, sender=CANARY, to=OURS, body=f"reply {text}", channel="sms",
                          actor=TEST_ACTOR)
    await ask(client, acme, "access")
    hold = await client.post("/v1/privacy/holds", headers=acme.headers, json={
        "subject": {"number": CANARY}, "basis": "Claim"})
    await client.post(f"/v1/privacy/holds/{hold.json()['id']}/release", headers=acme.headers)
    await settle(rt, clock)


def forms_of(report: ScanReport) -> set[str]:
    return {f.form for f in report.findings}


async def test_dsr_3_the_scan_finds_a_person_until_their_erasure_then_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    text = f"CANARY-{uuid.uuid4()}"
    await canary_everywhere(client, rt, clock, acme, text)
    theirs = await client.post("/v1/messages", headers=globex.headers,
                               json={"to": CANARY, "from": "Globex", "body": "kept"})
    assert theirs.status_code == 201
    canaries = [Canary.number(CANARY), Canary.text(text)]
    before = await scan(rt, canaries, accounts=[acme.id])
    assert not before.clean
    where = {f.where.split(" ")[0] for f in before.findings}
    assert {"messages.to_enc", "messages.from_enc", "messages.body_enc", "messages.to_index",
            "messages.from_index", "privacy_requests.subject_enc",
            "privacy_bundles.content_enc", "idempotency_keys.response_enc",
            "legal_holds.subject_index"} <= where
    assert "blind index (messages.to, live key)" in forms_of(before)
    assert "decrypts (as given)" in forms_of(before)

    await ask(client, acme, "erasure")
    await settle(rt, clock)

    after = await scan(rt, canaries, accounts=[acme.id])
    assert after.clean, after.findings  # DSR-3 1-3, AUD-4 (audit_events is a table)
    assert after.rows > 0
    # The same number is globex's own record: found under globex's live key only.
    rows = [f for f in (await scan(rt, canaries)).findings if f.store == "database"]
    assert {f.where for f in rows} == {f"messages.to_enc {theirs.json()['id']}",
                                       f"messages.to_index {theirs.json()['id']}"}


async def test_a_log_that_holds_a_person_is_found_in_any_form(
        rt: Runtime, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "clean.log").write_text("nothing to see\n" * 1000)
    (logs / "leak.log").write_text("x" * (1 << 20) + "called (202) 555-0173 back\n")
    report = await scan(rt, [Canary.number(CANARY)], paths=[logs])
    assert [(f.store, f.form) for f in report.findings] == [("file", "national")]
    assert report.findings[0].where.startswith(str(logs / "leak.log"))


def test_the_forms_of_a_number_and_an_address() -> None:
    forms = canary_forms(Canary.number("+1 202-555-0173"))
    assert {forms[k] for k in ("as given", "digits", "national", "national digits",
                               "with separators", "url-encoded", "base64")} == {
        "+12025550173", "12025550173", "(202) 555-0173", "2025550173", "+1 202-555-0173",
        "%2B12025550173", "KzEyMDI1NTUwMTcz"}
    email = canary_forms(Canary.email("Canary@Example.TEST"))
    assert email["as given"] == "Canary@example.test"
    assert email["lower-cased"] == "canary@example.test"
    for bad in ("12", "not a number"):
        with pytest.raises(ValueError, match="not a phone number"):
            Canary.number(bad)
    with pytest.raises(ValueError, match="8 characters"):
        Canary.text("short")


async def test_the_command_exits_1_on_a_find_and_refuses_garbage(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, settings: Settings,
        tmp_path: Path) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": CANARY, "from": "Acme", "body": "Hi"})
    assert sent.status_code == 201
    env = {"TIDINGS_DATA_DIR": str(settings.data_dir),
           "TIDINGS_DATABASE_URL": settings.database_url,
           "TIDINGS_SYSTEM_DATABASE_URL": settings.system_database_url,
           "TIDINGS_KEY_DIR": str(settings.resolved_key_dir()),
           "TIDINGS_KEYSTORE_URL": settings.keystore_url,
           "TIDINGS_MASTER_KEY": settings.master_key}

    def run(*args: str) -> tuple[int, str]:
        done = CliRunner().invoke(cli, ["privacy", "scan", *args], env=env)
        if done.exception and not isinstance(done.exception, SystemExit):
            raise done.exception
        return done.exit_code, done.output

    found = await asyncio.to_thread(run, "--number", CANARY, "--account", acme.id)
    assert found[0] == 1, found[1]
    assert "FOUND number #1: blind index (messages.to, live key)" in found[1]
    assert CANARY not in found[1]  # where and how, never the value
    clean = await asyncio.to_thread(run, "--email", "nobody@example.test", "--text",
                                    f"CANARY-{uuid.uuid4()}")
    assert clean[0] == 0, clean[1]
    assert clean[1].startswith("clean: ")
    for args in ((), ("--number", "12"), ("--text", "short"),
                 ("--path", str(tmp_path / "missing"), "--number", CANARY)):
        code, out = await asyncio.to_thread(run, *args)
        assert code == 2, out
        assert "Traceback" not in out
