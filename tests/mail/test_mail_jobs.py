"""queue_mail and the mail.send job, on both databases: only a committed transaction
sends; the mail goes to a real SMTP relay on loopback, exactly once across retries and
re-runs; without a relay it is kept, sealed, in the mailbox; failures for good are kept
there as failed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from tests.conftest import TEST_ACTOR, Tenant
from tests.connectors.smtp.test_connector import check_password, make_certificate
from tests.mail.conftest import Relay, running_relay, send_through
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.jobs.outbox import Job, claim
from tidings.mail.mailbox import KeptMail, Mailbox, mailbox_path
from tidings.mail.service import MAIL_JOB, MailKind, queue_mail
from tidings.mail.tasks import GIVE_UP_AFTER, send_batch
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users.models import User
from tidings.users.service import create_user
from tidings.web.errors import InvalidRequest, NotFound

TO = "ann@example.com"
SUBJECT = "Maintenance on Sunday"
BODY = "Tidings will be down from 02:00 to 03:00 UTC."


async def queue(rt: Runtime, tenant: str, **overrides: Any) -> str:
    values: dict[str, Any] = {"kind": MailKind.MAINTENANCE, "subject": SUBJECT, "body": BODY,
                              "to_address": TO, "account_id": tenant}
    values.update(overrides)
    async with rt.db.transaction(tenant=tenant) as session:
        return await queue_mail(rt, session, now=rt.clock.now(), actor=TEST_ACTOR, **values)


async def mail_jobs(rt: Runtime) -> list[Job]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(Job).where(Job.kind == MAIL_JOB))).all())


async def mailbox(rt: Runtime) -> list[KeptMail]:
    return Mailbox(mailbox_path(rt.settings.data_dir)).read(await rt.vault.platform_keys())


async def test_a_queued_mail_is_kept_in_the_mailbox_sealed_when_no_relay_is_set(
        rt: Runtime, acme: Tenant) -> None:
    mail_id = await queue(rt, acme.id)
    [job] = await mail_jobs(rt)
    assert (job.ref_id, job.tenant_id) == (mail_id, acme.id)
    for secret in (TO, "Maintenance", "02:00"):  # the job holds nothing in clear
        assert secret not in json.dumps(job.payload)
    assert await rt.worker_pool().drain() == 1
    [kept] = await mailbox(rt)
    assert (kept.id, kept.kind, kept.account_id, kept.status) == (
        mail_id, "maintenance", acme.id, "kept")
    assert (kept.to, kept.sender, kept.subject, kept.body) == (
        TO, "notices@tidings.invalid", SUBJECT, BODY)
    raw = mailbox_path(rt.settings.data_dir).read_text()
    assert mail_id in raw
    assert [secret for secret in (TO, "Maintenance", "02:00") if secret in raw] == []
    assert mailbox_path(rt.settings.data_dir).stat().st_mode & 0o077 == 0
    assert await mail_jobs(rt) == []


async def test_a_mail_queued_in_a_transaction_that_rolls_back_never_goes(
        rt: Runtime, acme: Tenant) -> None:
    async def queue_then_fail() -> None:
        async with rt.db.transaction(tenant=acme.id) as session:
            await queue_mail(rt, session, kind=MailKind.SUSPENSION, subject=SUBJECT, body=BODY,
                             to_address=TO, account_id=acme.id, now=rt.clock.now(),
                             actor=TEST_ACTOR)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        await queue_then_fail()
    assert await mail_jobs(rt) == []
    assert await rt.worker_pool().drain() == 0
    assert await mailbox(rt) == []


async def test_queueing_records_an_audit_event_naming_the_actor_and_no_value(
        rt: Runtime, acme: Tenant) -> None:
    mail_id = await queue(rt, acme.id)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        [event] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.row_id == mail_id))).all()
    assert (event.tenant_id, event.actor_type, event.actor_id, event.action) == (
        acme.id, "operator", "tests", "mail.queue")
    assert event.fields == ["body", "subject", "to"]


@pytest.mark.parametrize(("change", "code"), [
    ({"kind": "newsletter"}, "unknown_mail_kind"),
    ({"subject": "  "}, "invalid_subject"),
    ({"subject": "Hi\r\nBcc: everyone@example.com"}, "invalid_subject"),
    ({"subject": "x" * 201}, "invalid_subject"),
    ({"body": "\n"}, "invalid_body"),
    ({"to_address": "not an address"}, "invalid_email_address"),
])
async def test_bad_input_is_refused_before_anything_is_queued(
        rt: Runtime, acme: Tenant, change: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await queue(rt, acme.id, **change)
    assert refused.value.code == code
    assert await mail_jobs(rt) == []
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "mail.queue")) == 0


async def test_a_mail_id_still_waiting_is_queued_once(rt: Runtime, acme: Tenant) -> None:
    first = await queue(rt, acme.id, mail_id="mail_welcome_1")
    again = await queue(rt, acme.id, mail_id="mail_welcome_1")
    assert first == again == "mail_welcome_1"
    assert len(await mail_jobs(rt)) == 1


async def test_a_mail_to_a_user_goes_to_the_users_address_read_when_it_goes(
        rt: Runtime, acme: Tenant, relay: Relay) -> None:
    send_through(rt, relay.url)
    user = await create_user(rt, account_id=acme.id, email="Owner@Example.com", role="owner",
                             actor=TEST_ACTOR)
    mail_id = await queue(rt, acme.id, to_address=None, to_user_id=user.id,
                          kind=MailKind.PASSWORD_RESET)
    [job] = await mail_jobs(rt)
    assert "xample" not in json.dumps(job.payload)
    await rt.worker_pool().drain()
    [mail] = relay.received
    assert (mail["To"], mail["From"], mail["Subject"]) == (
        "Owner@example.com", "notices@tidings.invalid", SUBJECT)
    assert mail["Message-ID"] == f"<{mail_id}@tidings.invalid>"
    assert mail.get_content() == BODY + "\r\n"
    assert await mailbox(rt) == []  # sent, so not kept
    assert await mail_jobs(rt) == []


async def test_a_relay_with_starttls_and_a_login_takes_the_mail_over_tls(
        rt: Runtime, acme: Tenant, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    async with running_relay(tls_context=certificate.server_context(), require_starttls=True,
                             authenticator=check_password, auth_require_tls=True) as tls:
        send_through(rt, f"smtp+starttls://user:secret@127.0.0.1:{tls.port}"
                         f"?ca_file={certificate.cert_file}")
        await queue(rt, acme.id)
        await rt.worker_pool().drain()
    assert (len(tls.received), tls.logins, tls.over_tls) == (1, [b"user"], [True])
    assert await mail_jobs(rt) == []


async def test_a_relay_that_refuses_the_login_holds_the_mail_for_later(
        rt: Runtime, acme: Tenant, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    async with running_relay(tls_context=certificate.server_context(), require_starttls=True,
                             authenticator=check_password, auth_require_tls=True) as tls:
        send_through(rt, f"smtp+starttls://user:wrong@127.0.0.1:{tls.port}"
                         f"?ca_file={certificate.cert_file}")
        await queue(rt, acme.id)
        await rt.worker_pool().drain()
    assert tls.received == []
    [job] = await mail_jobs(rt)  # the operator's to fix: the mail waits, it is not lost
    assert job.run_at > rt.clock.now()


async def test_a_temporary_refusal_is_retried_later_and_the_mail_goes_once(
        rt: Runtime, acme: Tenant, relay: Relay, clock: FakeClock) -> None:
    send_through(rt, relay.url)
    relay.data_answers = ["451 4.3.0 try again later"]
    await queue(rt, acme.id)
    await rt.worker_pool().drain()
    assert relay.received == []
    [job] = await mail_jobs(rt)
    assert job.run_at > clock.now()  # backed off
    clock.advance((job.run_at - clock.now()).total_seconds())
    await rt.worker_pool().drain()
    assert len(relay.received) == 1
    clock.advance(3600)
    await rt.worker_pool().drain()
    assert len(relay.received) == 1
    assert await mail_jobs(rt) == []


async def test_a_job_run_again_after_its_lease_sends_nothing_twice(
        rt: Runtime, acme: Tenant, relay: Relay, clock: FakeClock) -> None:
    send_through(rt, relay.url)
    await queue(rt, acme.id)
    jobs = await claim(rt.db, kind=MAIL_JOB, limit=10, now=clock.now(),
                       lease=rt.worker_pool()._lease(MAIL_JOB))
    await send_batch(rt, jobs)
    await send_batch(rt, jobs)  # as a worker whose lease ran out before it completed them
    assert len(relay.received) == 1


async def test_a_refusal_for_good_fails_the_mail_and_keeps_it_as_failed(
        rt: Runtime, acme: Tenant, relay: Relay) -> None:
    send_through(rt, relay.url)
    relay.rcpt_answers = ["550 5.1.1 no such user"]
    mail_id = await queue(rt, acme.id)
    await rt.worker_pool().drain()
    assert relay.received == []
    assert await mail_jobs(rt) == []
    [kept] = await mailbox(rt)
    assert (kept.id, kept.status, kept.error, kept.to) == (mail_id, "failed", "smtp_5xx:550", TO)


async def test_a_relay_down_for_a_day_fails_the_mail_with_its_last_error(
        rt: Runtime, acme: Tenant, clock: FakeClock) -> None:
    send_through(rt, "smtp://127.0.0.1:1")  # nothing listens there
    queued_at = clock.now()
    mail_id = await queue(rt, acme.id)
    attempts = 0
    while await mail_jobs(rt):
        attempts += 1
        [job] = await mail_jobs(rt)
        clock.advance(max(0.0, (job.run_at - clock.now()).total_seconds()))
        await rt.worker_pool().drain()
    assert attempts > 5  # retried with growing delays, not given up at once
    [kept] = await mailbox(rt)
    # Given up at the last attempt before a day had passed: the next would be after it.
    assert GIVE_UP_AFTER - timedelta(hours=2) < kept.at - queued_at < GIVE_UP_AFTER
    assert (kept.id, kept.status, kept.error) == (mail_id, "failed", "connector_unavailable")


async def test_a_mail_to_a_user_of_another_account_or_none_is_refused(
        rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    theirs = await create_user(rt, account_id=globex.id, email="gus@globex.example",
                               role="owner", actor=TEST_ACTOR)
    for user_id in (theirs.id, "usr_nobody"):
        with pytest.raises(NotFound) as refused:
            await queue(rt, acme.id, to_address=None, to_user_id=user_id)
        assert refused.value.code == "user_not_found"
    assert await mail_jobs(rt) == []


async def test_a_mail_to_a_user_who_is_gone_when_it_goes_fails(
        rt: Runtime, acme: Tenant) -> None:
    user = await create_user(rt, account_id=acme.id, email="ann@acme.example", role="owner",
                             actor=TEST_ACTOR)
    mail_id = await queue(rt, acme.id, to_address=None, to_user_id=user.id)
    async with rt.db.transaction(tenant=acme.id) as session:
        await session.execute(delete(User).where(User.id == user.id))
    await rt.worker_pool().drain()
    [kept] = await mailbox(rt)
    assert (kept.id, kept.status, kept.error) == (mail_id, "failed", "mail_recipient_gone")
    assert await mail_jobs(rt) == []
