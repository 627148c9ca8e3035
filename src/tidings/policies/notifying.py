"""Telling every client account of a new version (the ``policies.notify`` job's work).

The accounts told are those not terminated that existed when the version was published
(an account opened later signs up under the versions published by then), but the
platform's own. Each gets one notice, mailed to each of its active owners, the mail ids
kept as proof, or ``undeliverable`` when it has no active owner. The work goes a chunk
of accounts per transaction, so that thousands of accounts never make one long
transaction; a notice and its mails are written together, and a notice exists once per
version and account (a unique constraint), so a run repeated after a crash tells only
the accounts not told yet, and never mails one twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountStatus
from tidings.audit.service import Actor, actor_label
from tidings.core.ids import new_id
from tidings.mail.account_notices import queue_owner_notice
from tidings.mail.service import MailKind, wake_sender
from tidings.numbers.codes import PLATFORM_ACCOUNT
from tidings.policies.models import PolicyKind, PolicyNotice, PolicyVersion
from tidings.storage.db import SYSTEM

if TYPE_CHECKING:
    from tidings.core.services import Services

__all__ = ["CHUNK", "KIND_NAMES", "NOTICE_ACTION", "NO_ACTIVE_OWNER", "notice_mail",
           "notify_accounts", "public_link"]

CHUNK = 200  # accounts a transaction
NOTICE_ACTION = "policy.notify"  # each notice mail's audit event, on the client's trail
NO_ACTIVE_OWNER = "no_active_owner"
KIND_NAMES = {PolicyKind.PRIVACY_POLICY.value: "privacy policy",
              PolicyKind.DPA.value: "data processing agreement (DPA)",
              PolicyKind.TERMS.value: "terms of service"}
_SUBJECT_TITLE_CHARS = 120  # the subject's limit is 200


async def notify_accounts(rt: Services, version_id: str, *, actor: Actor) -> int:
    """Tell each account not told yet, a chunk a transaction; how many this run told."""
    told = 0
    while True:
        now = rt.clock.now()
        async with rt.db.transaction(tenant=SYSTEM) as session:
            version = await session.get(PolicyVersion, version_id)
            if version is None:
                return told
            accounts = await _untold(session, version)
            for account_id, name in accounts:
                await _tell(rt, session, version, account_id, name, actor=actor, now=now)
        told += len(accounts)
        if accounts:
            wake_sender(rt)
        if len(accounts) < CHUNK:
            return told


async def _untold(session: AsyncSession, version: PolicyVersion) -> list[tuple[str, str]]:
    told = exists().where(PolicyNotice.version_id == version.id,
                          PolicyNotice.tenant_id == Account.id)
    rows = (await session.execute(
        select(Account.id, Account.name).where(
            Account.status != AccountStatus.TERMINATED.value, Account.id != PLATFORM_ACCOUNT,
            Account.created_at <= version.published_at, ~told)
        .order_by(Account.created_at, Account.id).limit(CHUNK))).all()
    return [(account_id, name) for account_id, name in rows]


async def _tell(rt: Services, session: AsyncSession, version: PolicyVersion, account_id: str,
                name: str, *, actor: Actor, now: datetime) -> None:
    subject, body = notice_mail(version, account_id=account_id, account_name=name,
                                link=public_link(rt, version))
    mail_ids = await queue_owner_notice(rt, session, account_id=account_id,
                                        kind=MailKind.LEGAL, subject=subject, body=body,
                                        actor=actor, now=now, audit_action=NOTICE_ACTION)
    session.add(PolicyNotice(
        id=new_id("pnt"), version_id=version.id, tenant_id=account_id, mail_ids=mail_ids,
        undeliverable=None if mail_ids else NO_ACTIVE_OWNER, notified_at=now,
        notified_by=actor_label(actor)))


def public_link(rt: Services, version: PolicyVersion) -> str:
    """The version's public page (``/legal/<kind>/<version>``); the label is a plain
    word (``schemas.VERSION_PATTERN``), safe in a path as it is."""
    return f"{rt.settings.public_url.rstrip('/')}/legal/{version.kind}/{version.version}"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def notice_mail(version: PolicyVersion, *, account_id: str, account_name: str,
                link: str) -> tuple[str, str]:
    """The notice's subject and body: what changed, where to read it, the deadline, and
    that silence is acceptance at the deadline."""
    kind = KIND_NAMES.get(version.kind, version.kind)
    title = version.title if len(version.title) <= _SUBJECT_TITLE_CHARS \
        else version.title[:_SUBJECT_TITLE_CHARS - 1] + "…"
    subject = f"{title}: a new version takes effect on {version.effective_at:%Y-%m-%d}"
    body = (
        f"Tidings' operator has published a new version of its {kind}, "
        f"\"{version.title}\" (version {version.version}), which applies to your account "
        f"{account_name!r} ({account_id}).\n\n"
        f"What changes:\n{version.summary}\n\n"
        f"Read the new version: {link}\n"
        f"(SHA-256 of its text: {version.sha256})\n\n"
        f"It takes effect on {_when(version.effective_at)}.\n\n"
        f"If you do not object in writing by {_when(version.objection_deadline)}, one "
        "month from this notice, the changes are deemed accepted by your account on that "
        "date.\n"
        "To object, give your reason on the portal's Policies page, or "
        f"POST /v1/policies/{version.id}/objection {{\"reason\": \"...\"}}. To accept now: "
        f"POST /v1/policies/{version.id}/acceptance.\n")
    if version.kind == PolicyKind.DPA:
        body += "If you do not agree with the amended DPA, you may terminate the DPA.\n"
    return subject, body
