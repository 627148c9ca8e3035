"""The notice of a sub-processor to each client, and the client's objection.

The ``subprocessors.notify`` job writes one notice per client account (the top of a
tree: the controller; its sub-accounts follow it), a hundred a transaction, each with
a mail to the client's owners in the same transaction: a crash repeats only what did
not commit, and the unique (sub-processor, client) pair stops a second notice. A
client told later than the register's notice date still gets its thirty days: its
notice carries its own ``effective_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountStatus
from tidings.audit.service import SYSTEM_ACTOR, Actor, actor_label, audit_row, record
from tidings.core.ids import new_id
from tidings.core.logs import get_logger
from tidings.jobs.outbox import ClaimedJob, complete
from tidings.mail.account_notices import mail_staff, queue_owner_notice
from tidings.mail.service import MailKind
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.subprocessors.models import Lifecycle, Subprocessor, SubprocessorNotice
from tidings.subprocessors.register import NOTICE_PERIOD, get_entry
from tidings.web.errors import Conflict

if TYPE_CHECKING:
    from tidings.core.services import Services

log = get_logger(__name__)

REASON_FIELD = "subprocessor_notices.objection_reason"
NOTICE_ACTION = "subprocessor.notice"
NO_ACTIVE_OWNER = "no_active_owner"
NOT_TOLD = "joined_after_notice"  # an account that objects without having been told
_CLIENTS_A_TRANSACTION = 100


async def notify_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    for job in jobs:
        while await _notify_some(rt, job.ref_id):
            pass
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await complete(session, [job.id])


async def _notify_some(rt: Services, sub_id: str) -> int:
    """Notices to the next clients not told yet; how many (0: all are)."""
    async with rt.db.transaction(tenant=SYSTEM) as session:
        entry = await session.get(Subprocessor, sub_id)
        if entry is None or entry.lifecycle != Lifecycle.NOTIFIED:
            return 0  # retired before everyone was told: tell nobody more
        told = select(SubprocessorNotice.tenant_id).where(
            SubprocessorNotice.subprocessor_id == sub_id)
        clients = list((await session.scalars(
            select(Account).where(Account.parent_id.is_(None),
                                  Account.status != AccountStatus.TERMINATED.value,
                                  Account.id.not_in(told))
            .order_by(Account.id).limit(_CLIENTS_A_TRANSACTION))).all())
        now = rt.clock.now()
        for client in clients:
            session.add(await _notice(rt, session, entry, client, now))
    if clients:
        log.info("subprocessor_notices_sent", subprocessor_id=sub_id, clients=len(clients))
    return len(clients)


async def _notice(rt: Services, session: AsyncSession, entry: Subprocessor, client: Account,
                  now: datetime) -> SubprocessorNotice:
    assert entry.effective_at is not None  # notified entries have one
    effective_at = max(entry.effective_at, now + NOTICE_PERIOD)
    subject, body = notice_mail(entry, client, effective_at)
    mail_ids = await queue_owner_notice(rt, session, account_id=client.id, kind=MailKind.LEGAL,
                                        subject=subject, body=body, actor=SYSTEM_ACTOR,
                                        now=now, audit_action=NOTICE_ACTION)
    return SubprocessorNotice(id=new_id("spn"), subprocessor_id=entry.id, tenant_id=client.id,
                              notified_at=now, effective_at=effective_at, mail_ids=mail_ids,
                              undeliverable=None if mail_ids else NO_ACTIVE_OWNER)


def notice_mail(entry: Subprocessor, client: Account,
                effective_at: datetime) -> tuple[str, str]:
    subject = f"A new sub-processor from {effective_at.date().isoformat()}: {entry.legal_name}"
    body = (
        f"Tidings will engage a new sub-processor for the personal data it processes for "
        f"{client.name} ({client.id}):\n\n"
        f"  Company: {entry.legal_name}\n"
        f"  Purpose: {entry.purpose}\n"
        f"  Countries: {', '.join(entry.countries)}\n"
        f"  Data: {', '.join(entry.data_categories)}\n"
        f"  Transfer safeguard: {entry.transfer_mechanism}\n"
        f"  Security: {entry.security_summary}\n\n"
        f"It may process your data from {effective_at.isoformat(timespec='minutes')} (UTC). "
        "If you have reasonable grounds to object, object in writing before then: on the "
        "Privacy page of the portal, or POST /v1/subprocessors/"
        f"{entry.id}/objection. While your objection stands, it processes none of your "
        "data. Without an objection by then, the change is deemed accepted.\n")
    return subject, body


async def client_of(session: AsyncSession, tenant: str) -> Account:
    account = await session.get(Account, tenant)
    assert account is not None  # the caller's own account
    return account


async def notice_of(session: AsyncSession, sub_id: str, tenant: str, *,
                    lock: bool = False) -> SubprocessorNotice | None:
    query = select(SubprocessorNotice).where(SubprocessorNotice.subprocessor_id == sub_id,
                                             SubprocessorNotice.tenant_id == tenant)
    found: SubprocessorNotice | None = await session.scalar(
        query.with_for_update() if lock else query)
    return found


async def do_object(rt: Services, session: AsyncSession, *, keys: TenantKeys, tenant: str,
                    sub_id: str, reason: str, actor: Actor,
                    now: datetime) -> SubprocessorNotice:
    """Record the client's objection: it keeps the client off the sub-processor and
    opens a resolution for the operator (staff are mailed)."""
    client = await client_of(session, tenant)
    if client.parent_id is not None:
        raise Conflict("Objections are the client's: object from the top account, whose "
                       "notice governs the accounts below it.", code="controller_only")
    entry = await get_entry(session, sub_id, public=True)
    if entry.lifecycle == Lifecycle.RETIRED:
        raise Conflict(f"{sub_id} is retired: nothing to object to.",
                       code="subprocessor_retired")
    notice = await notice_of(session, sub_id, tenant, lock=True) or _untold(entry, tenant, now)
    if notice.objected_at is not None:
        raise Conflict("This account objected already.", code="already_objected")
    if now >= notice.effective_at:
        raise Conflict(f"The time to object ended at "
                       f"{notice.effective_at.isoformat(timespec='minutes')}.",
                       code="objection_window_closed")
    notice.objected_at, notice.objected_by = now, actor_label(actor)
    notice.objection_reason_enc = keys.encrypt(reason.strip(), field=REASON_FIELD)
    session.add(notice)
    await session.flush()
    await record(session, [audit_row(tenant=tenant, actor=actor, action="subprocessor.object",
                                     table="subprocessor_notices", row_id=notice.id,
                                     fields=["objection_reason"], now=now)])
    return notice


def _untold(entry: Subprocessor, tenant: str, now: datetime) -> SubprocessorNotice:
    """A client that joined after the notice objects within the register's window."""
    assert entry.effective_at is not None
    return SubprocessorNotice(id=new_id("spn"), subprocessor_id=entry.id, tenant_id=tenant,
                              notified_at=now, effective_at=entry.effective_at, mail_ids=[],
                              undeliverable=NOT_TOLD)


async def tell_staff_of_objections(rt: Services) -> None:
    """Mail staff of each objection not told yet (the chore): the resolution it opens.
    The client's transaction cannot write the platform's mail, so this one does."""
    async with rt.db.transaction(tenant=SYSTEM) as session:
        rows = (await session.execute(
            select(SubprocessorNotice, Subprocessor, Account)
            .join(Subprocessor, Subprocessor.id == SubprocessorNotice.subprocessor_id)
            .join(Account, Account.id == SubprocessorNotice.tenant_id)
            .where(SubprocessorNotice.objected_at.is_not(None),
                   SubprocessorNotice.staff_told_at.is_(None))
            .order_by(SubprocessorNotice.objected_at).limit(_CLIENTS_A_TRANSACTION)))
        now = rt.clock.now()
        for notice, entry, client in rows.all():
            notice.staff_told_at = now
            subject = f"Objection to sub-processor {entry.legal_name} by {client.name}"
            body = (f"{client.name} ({client.id}) objects to the sub-processor "
                    f"{entry.legal_name} ({entry.id}). It stays off it until the objection "
                    f"is resolved: /operator/subprocessors/{entry.id}.\n")
            mails = await mail_staff(rt, session, kind=MailKind.LEGAL, subject=subject,
                                     body=body, actor=SYSTEM_ACTOR, now=now)
            log.warning("subprocessor_objection", subprocessor_id=entry.id,
                        account_id=client.id, staff_mailed=len(mails))


async def do_resolve(rt: Services, session: AsyncSession, *, sub_id: str, tenant: str,
                     outcome: str, note: str, actor: Actor, now: datetime) -> SubprocessorNotice:
    """The operator closes an objection; the client's owners are told the outcome."""
    entry = await get_entry(session, sub_id)
    notice = await notice_of(session, sub_id, tenant, lock=True)
    if notice is None or notice.objected_at is None:
        raise Conflict(f"{tenant} has not objected to {sub_id}.", code="no_objection")
    if notice.resolution is not None:
        raise Conflict("This objection is resolved already.", code="objection_resolved")
    notice.resolution, notice.resolved_at = outcome, now
    notice.resolved_by, notice.resolution_note = actor_label(actor), note.strip()
    await record(session, [audit_row(tenant=tenant, actor=actor,
                                     action="subprocessor.resolve",
                                     table="subprocessor_notices", row_id=notice.id,
                                     fields=["resolution"], now=now)])
    client = await client_of(session, tenant)
    await queue_owner_notice(rt, session, account_id=tenant, kind=MailKind.LEGAL,
                             subject=f"Your objection to {entry.legal_name}: {outcome}",
                             body=_resolution_mail(entry, client, notice), actor=actor,
                             now=now, audit_action=NOTICE_ACTION)
    return notice


def _resolution_mail(entry: Subprocessor, client: Account, notice: SubprocessorNotice) -> str:
    what = {"upheld": "stays off it: it processes none of your data",
            "terminating": "stays off it until the service ends",
            "withdrawn": "is withdrawn: the sub-processor may process your data from "
                         f"{notice.effective_at.isoformat(timespec='minutes')} (UTC)"}
    return (f"The objection of {client.name} ({client.id}) to the sub-processor "
            f"{entry.legal_name} ({entry.id}) {what[notice.resolution or 'upheld']}.\n\n"
            f"Note: {notice.resolution_note}\n")


def reason_of(keys: TenantKeys, notice: SubprocessorNotice) -> str | None:
    return keys.decrypt_optional(notice.objection_reason_enc, field=REASON_FIELD)
