"""The operator's notices (maintenance, say) to the owners of clients' accounts.

A notice goes to every active user with the role ``owner`` of one account, or of every
account that may send (active and trial, sub-accounts included: each is a client of the
platform with its own owners; one below a suspended or terminated account is held back
with it, and is left out). It is queued as one ``maintenance`` mail per owner, in
one transaction: all of them or, on any refusal, none. Each mail's audit event,
``notice.send``, names the operator who sent it, on the account's trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import SENDING_STATUSES, Account
from tidings.accounts.permissions import Role
from tidings.accounts.service import ancestry, effective_status
from tidings.audit.service import Actor
from tidings.mail.service import MailKind, check_body, check_subject, queue_mail, wake_sender
from tidings.storage.db import SYSTEM
from tidings.users.models import User, UserStatus
from tidings.web.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from tidings.core.services import Services

NOTICE_ACTION = "notice.send"


@dataclass(frozen=True)
class NoticeSent:
    queued: int  # mails, one per owner
    accounts: int  # accounts they went to
    mail_ids: list[str]


async def send_notice(rt: Services, *, account_id: str | None, everyone: bool, subject: str,
                      body: str, actor: Actor) -> NoticeSent:
    """Queue a maintenance notice to the owners of ``account_id``, or of every account.

    ``InvalidRequest`` for neither or both audiences, an empty or multi-line subject, an
    empty body; ``NotFound`` for an unknown account; ``Conflict`` for one that is not
    active or trial, or has no owner. Nothing is queued on any of them.
    """
    if everyone == (account_id is not None):
        raise InvalidRequest("Send a notice to one account or to all of them: name exactly "
                             "one of account and all.", code="invalid_notice_audience")
    subject, body = check_subject(subject), check_body(body)
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        if account_id is not None:
            await _sending_account(session, account_id)
        owners = await _reachable(session, await _owners(session, account_id))
        if account_id is not None and not owners:
            raise Conflict(f"Account {account_id} has no active owner to write to.",
                           code="account_has_no_owner")
        mail_ids = [await queue_mail(rt, session, kind=MailKind.MAINTENANCE, subject=subject,
                                     body=body, now=now, actor=actor, to_user_id=user_id,
                                     account_id=tenant, audit_action=NOTICE_ACTION)
                    for user_id, tenant in owners]
    if mail_ids:
        wake_sender(rt)
    return NoticeSent(len(mail_ids), len({tenant for _, tenant in owners}), mail_ids)


async def _sending_account(session: AsyncSession, account_id: str) -> None:
    chain = await ancestry(session, account_id=account_id)
    if not chain:
        raise NotFound(f"No account {account_id!r}.", code="account_not_found")
    status = effective_status(chain)
    if status not in SENDING_STATUSES:
        held = "" if status == chain[0].status else " (held back by an account above it)"
        raise Conflict(f"Account {account_id} is {status}{held}: notices go to active and "
                       "trial accounts.", code="account_not_active")


async def _reachable(session: AsyncSession,
                     owners: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The owners whose account is not held back by a suspended or terminated parent."""
    sending: dict[str, bool] = {}
    for tenant in dict.fromkeys(tenant for _, tenant in owners):
        chain = await ancestry(session, account_id=tenant)
        sending[tenant] = effective_status(chain) in SENDING_STATUSES
    return [(user_id, tenant) for user_id, tenant in owners if sending[tenant]]


async def _owners(session: AsyncSession,
                  account_id: str | None) -> Sequence[tuple[str, str]]:
    """(user id, account id) of the active owners of active and trial accounts."""
    query = (select(User.id, User.tenant_id).join(Account, Account.id == User.tenant_id)
             .where(User.role == Role.OWNER.value, User.status == UserStatus.ACTIVE.value,
                    Account.status.in_([s.value for s in SENDING_STATUSES]))
             .order_by(Account.created_at, Account.id, User.created_at, User.id))
    if account_id is not None:
        query = query.where(Account.id == account_id)
    return [(user_id, str(tenant)) for user_id, tenant in (await session.execute(query)).all()]
