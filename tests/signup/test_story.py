"""The whole story as a new client lives it: sign up, confirm the address from the mail,
log in, tell who the company is, get verified as a trial (and told by mail), verify a
number, send to it, be refused another, use up the allowance; then be made active and
send to anyone."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.api.test_operator_api import operator_key
from tests.conftest import assert_problem
from tests.signup.conftest import (
    ALLOWANCE,
    DETAILS,
    PASSWORD,
    logged_in,
    mailbox,
    signup_body,
    token_in,
    verify_number,
)
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.signup.models import AccountVerification, TrialUsage
from tidings.storage.db import SYSTEM

VERIFIED = "+4915123456789"
STRANGER = "+4915198765432"


async def sent_by(rt: Runtime, account_id: str) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == account_id)) or 0)


async def test_a_new_client_signs_up_is_verified_tries_the_trial_and_goes_active(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    signed = await client.post("/v1/signup", json=signup_body())
    assert signed.status_code == 202, signed.text

    [welcome] = await mailbox(rt, clock)
    assert (welcome.kind, welcome.to) == ("address_confirmation", "founder@nimbus.example")
    assert "https://tidings.example/signup/confirm?token=" in welcome.body
    confirmed = await client.post("/v1/signup/confirm", json={"token": token_in(welcome)})
    assert confirmed.json() == {"email_confirmed": True}

    owner = await logged_in(client, clock, "founder@nimbus.example")
    account = (await client.get("/v1/account", headers=owner)).json()
    assert (account["name"], account["status"]) == ("Nimbus Labs", "pending_verification")
    pending = await client.post("/v1/messages", headers=owner,
                                json={"to": VERIFIED, "from": "Nimbus", "body": "Hi"})
    assert_problem(pending, 403, "account_pending_verification")

    submitted = await client.put("/v1/account/verification", headers=owner, json=DETAILS)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["email_confirmed"] is True
    assert submitted.json()["details"]["contact_email"] == "ada@nimbus.example"

    _, ops_secret = await operator_key(rt, clock)
    ops = {"Authorization": f"Bearer {ops_secret}"}
    [waiting] = (await client.get("/v1/operator/verifications", headers=ops)).json()
    assert (waiting["account_id"], waiting["details"]["legal_name"]) == (
        account["id"], "Nimbus Labs GmbH")
    trial = await client.post(f"/v1/operator/accounts/{account['id']}/verify", headers=ops,
                              json={"outcome": "trial", "note": "Welcome aboard."})
    assert trial.status_code == 200, trial.text
    assert trial.json()["account_status"] == "trial"
    told = (await mailbox(rt, clock))[-1]
    assert (told.kind, told.to) == ("account_verified", "founder@nimbus.example")
    assert f"may send {ALLOWANCE} messages" in told.body
    assert "Welcome aboard." in told.body

    listed = await verify_number(client, rt, owner, VERIFIED)
    assert (listed["number"], listed["status"]) == (VERIFIED, "verified")
    first = await client.post("/v1/messages", headers=owner,
                              json={"to": VERIFIED, "from": "Nimbus", "body": "Hello"})
    assert first.status_code == 201, first.text
    refused = await client.post("/v1/messages", headers=owner,
                                json={"to": STRANGER, "from": "Nimbus", "body": "Hello"})
    assert_problem(refused, 403, "trial_recipient_not_verified")

    batch = await client.post("/v1/messages/batch", headers=owner, json={
        "from": "Nimbus", "body": "Hi",
        "recipients": [{"to": VERIFIED}, {"to": STRANGER}, {"to": VERIFIED}]})
    assert batch.status_code < 300, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["error"]["code"] == "trial_recipient_not_verified"
    assert await sent_by(rt, account["id"]) == ALLOWANCE  # 1 + 2: the refused ones do not count

    used = await client.post("/v1/messages", headers=owner,
                             json={"to": VERIFIED, "from": "Nimbus", "body": "Once more"})
    assert_problem(used, 403, "trial_allowance_used")
    over = await client.post("/v1/messages/batch", headers=owner, json={
        "from": "Nimbus", "body": "Hi", "recipients": [{"to": VERIFIED}]})
    assert over.json()["results"][0]["error"]["code"] == "trial_allowance_used"
    assert await sent_by(rt, account["id"]) == ALLOWANCE
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        usage = await session.get(TrialUsage, account["id"])
        assert usage is not None
        assert usage.messages_sent == ALLOWANCE

    active = await client.post(f"/v1/operator/accounts/{account['id']}/verify", headers=ops,
                               json={"outcome": "active"})
    assert active.json()["account_status"] == "active"
    assert (await mailbox(rt, clock))[-1].subject == "Your account is verified and active"
    anyone = await client.post("/v1/messages", headers=owner,
                               json={"to": STRANGER, "from": "Nimbus", "body": "Hello"})
    assert anyone.status_code == 201, anyone.text


async def test_personal_data_of_the_sign_up_is_not_stored_in_clear(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    assert (await client.post("/v1/signup", json=signup_body())).status_code == 202
    [welcome] = await mailbox(rt, clock)
    await client.post("/v1/signup/confirm", json={"token": token_in(welcome)})
    owner = await logged_in(client, clock, "founder@nimbus.example")
    await client.put("/v1/account/verification", headers=owner, json=DETAILS)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        [row] = (await session.scalars(select(AccountVerification))).all()
    stored = b"".join(v for v in (row.contact_name_enc, row.contact_email_enc,
                                  row.contact_phone_enc, row.intended_use_enc) if v)
    for secret in ("Ada Nimbus", "ada@nimbus.example", "+4915123456789", "clinics"):
        assert secret.encode() not in stored
    assert PASSWORD.encode() not in (mailbox_text := welcome.body.encode())
    assert b"founder@nimbus.example" not in mailbox_text


async def test_each_write_of_the_sign_up_is_an_audit_event_naming_its_actor(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    assert (await client.post("/v1/signup", json=signup_body())).status_code == 202
    [welcome] = await mailbox(rt, clock)
    await client.post("/v1/signup/confirm", json={"token": token_in(welcome)})
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    trail = [(e.actor_type, e.actor_id.split("_")[0], e.action, e.table_name, sorted(e.fields))
             for e in events]
    assert trail == [
        ("system", "signup", "create", "accounts",
         ["name", "status", "webhook_statuses", "webhook_url"]),
        ("system", "signup", "user.create", "users", ["email", "password", "role"]),
        ("system", "signup", "create", "account_verifications", ["country", "legal_name"]),
        ("system", "signup", "mail.queue", "platform_mail", ["body", "subject"]),
        ("user", "usr", "update", "account_verifications", ["email_confirmed_at"]),
    ]
    text = " ".join(str(e.__dict__) for e in events)
    assert "founder@nimbus.example" not in text
    assert PASSWORD not in text
