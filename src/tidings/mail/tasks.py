"""Outbox handler ``mail.send``: the platform's own mail, sent once, retried with backoff.

Each job is opened when it runs: its sealed subject and body, and its recipient (a
user's address decrypted now, so a changed address is honoured, or the sealed
address). The sender answers per mail: sent (or kept in the mailbox) completes the
job; a temporary failure (relay down, a 4xx) waits ``webhooks.backoff``'s growing delay
and tries again until ``GIVE_UP_AFTER``; a refusal (a 5xx, an address the relay will
not take, a user who no longer exists) fails it for good. A failed mail is kept in the
mailbox marked ``failed`` with its error code and logged, so the operator sees it.
Logs carry mail ids, kinds and codes, never an address or text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from tidings.core.logs import get_logger
from tidings.jobs.outbox import ClaimedJob, complete, retry_many_later
from tidings.jobs.registry import JobRegistry
from tidings.mail.sender import Outcome, OutgoingMail
from tidings.mail.service import MAIL_JOB, unseal
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys, VaultError
from tidings.users.models import User
from tidings.webhooks.backoff import next_attempt_delay, should_give_up

if TYPE_CHECKING:
    from tidings.core.services import Services

log = get_logger("tidings.mail")
GIVE_UP_AFTER = timedelta(hours=24)
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 3600.0
RECIPIENT_GONE = "mail_recipient_gone"
UNREADABLE = "mail_unreadable"


async def send_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    platform = await rt.vault.platform_keys()
    now = rt.clock.now()
    done, retries = [], []
    for job, mail, outcome in await _send(rt, jobs, platform, now):
        retry_at = _retry_at(job, outcome, now)
        if retry_at is not None:
            retries.append((job.id, retry_at))
            continue
        if outcome.status == "sent":
            log.info("platform_mail_sent", mail_id=job.ref_id, kind=mail.kind,
                     via=rt.platform_mail.via)
        else:
            await _fail(rt, mail, outcome, job, platform=platform, now=now)
        done.append(job.id)
    async with rt.db.core(tenant=SYSTEM) as session:
        await complete(session, done)
        await retry_many_later(session, retries)


async def _send(rt: Services, jobs: Sequence[ClaimedJob], platform: TenantKeys,
                now: datetime) -> list[tuple[ClaimedJob, OutgoingMail, Outcome]]:
    """Each job with its mail and what became of it; a job that cannot be opened fails."""
    addresses = await _user_addresses(rt, jobs, platform)
    opened = [(job, _open(job, platform, addresses)) for job in jobs]
    ready = [(job, mail) for job, mail in opened if isinstance(mail, OutgoingMail)]
    outcomes = await rt.platform_mail.send([mail for _, mail in ready], platform=platform,
                                           now=now)
    results = [(job, mail, outcome) for (job, mail), outcome in zip(ready, outcomes,
                                                                    strict=True)]
    results += [(job, _unopened(job), failure) for job, failure in opened
                if isinstance(failure, Outcome)]
    return results


def _retry_at(job: ClaimedJob, outcome: Outcome, now: datetime) -> datetime | None:
    """When to try a ``retry`` again; None for any other outcome, or once it is too old."""
    if outcome.status != "retry":
        return None
    retry_at = now + timedelta(seconds=next_attempt_delay(
        max(1, job.attempts), base_seconds=RETRY_BASE_SECONDS, cap_seconds=RETRY_CAP_SECONDS))
    if should_give_up(job.created_at, retry_at, max_age_seconds=GIVE_UP_AFTER.total_seconds()):
        return None
    log.warning("platform_mail_retry", mail_id=job.ref_id, error_code=outcome.error,
                attempt=job.attempts)
    return retry_at


async def _fail(rt: Services, mail: OutgoingMail, outcome: Outcome, job: ClaimedJob, *,
                platform: TenantKeys, now: datetime) -> None:
    error = outcome.error or "mail_failed"
    log.error("platform_mail_failed", mail_id=job.ref_id, kind=mail.kind, error_code=error,
              attempts=job.attempts)
    await rt.platform_mail.keep_failed(mail, error, platform=platform, now=now)


def _open(job: ClaimedJob, platform: TenantKeys,
          addresses: dict[str, str]) -> OutgoingMail | Outcome:
    payload = job.payload or {}
    try:
        private = unseal(platform, payload["sealed"])
    except (KeyError, ValueError, VaultError):
        return Outcome("failed", UNREADABLE)
    user_id = payload.get("to_user_id")
    to = addresses.get(user_id) if user_id else private.get("to")
    if to is None:
        return Outcome("failed", RECIPIENT_GONE)
    return OutgoingMail(id=job.ref_id, kind=str(payload.get("kind")),
                        account_id=payload.get("account_id"), to=to,
                        subject=private["subject"], body=private["body"])


def _unopened(job: ClaimedJob) -> OutgoingMail:
    """What the mailbox can say of a job it could not open: its id, kind and account."""
    payload = job.payload or {}
    return OutgoingMail(id=job.ref_id, kind=str(payload.get("kind")),
                        account_id=payload.get("account_id"), to="", subject="", body="")


async def _user_addresses(rt: Services, jobs: Sequence[ClaimedJob],
                          platform: TenantKeys) -> dict[str, str]:
    """The current address of each user the jobs write to, by user id."""
    # Here, not at the top: users.service brings the password checks (zxcvbn), which
    # every command that opens a runtime would load for nothing.
    from tidings.users.service import EMAIL_FIELD

    user_ids = {str(j.payload["to_user_id"]) for j in jobs
                if j.payload and j.payload.get("to_user_id")}
    if not user_ids:
        return {}
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.execute(select(User.id, User.tenant_id, User.email_enc)
                                      .where(User.id.in_(user_ids)))).all()
    addresses = {}
    for user_id, tenant, email_enc in rows:
        keys = await rt.vault.keys_for(tenant) if tenant else platform  # staff: the platform's
        try:
            addresses[user_id] = keys.decrypt(email_enc, field=EMAIL_FIELD)
        except VaultError:  # the account's keys were destroyed: nobody left to write to
            continue
    return addresses


def register(registry: JobRegistry) -> None:
    """The platform's own mail to its clients."""
    registry.job(MAIL_JOB, send_batch)
