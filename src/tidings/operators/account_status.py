"""The operator suspends, reactivates or terminates a client's account, with a reason;
the owners hear of a suspension by mail. One function for the operator's CLI
(``tidings accounts set-status``), API (``POST /v1/operator/accounts/{id}/status``) and
console (``/operator/accounts``)."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.accounts.models import AccountStatus
from tidings.accounts.service import get_account
from tidings.accounts.suspension import OPERATOR, do_set_status
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.mail.account_notices import queue_suspension_notice
from tidings.mail.service import wake_sender


@dataclass(frozen=True)
class StatusSet:
    account_id: str
    status: str
    owners_notified: int


async def set_account_status(rt: Services, *, account_id: str, status: AccountStatus,
                             reason: str | None, actor: Actor) -> StatusSet:
    """A suspension holds back everything below the account too, open SMPP binds
    included, and only the operator lifts its own."""
    async with rt.db.transaction(tenant=account_id) as session:
        account = await get_account(session, account_id=account_id)
        keys = await rt.vault.keys_for(account.id)  # once it is known to exist
        newly_suspended = (status == AccountStatus.SUSPENDED
                           and account.status != AccountStatus.SUSPENDED)
        await do_set_status(session, account=account, keys=keys, status=status,
                            reason=reason, by=OPERATOR, actor=actor, now=rt.clock.now())
        notified = await queue_suspension_notice(
            rt, session, account=account, reason=reason, actor=actor,
            now=rt.clock.now()) if newly_suspended else 0
    if notified:
        wake_sender(rt)
    rt.auth.invalidate()  # this process at once; the others within their cache windows
    rt.account_rights.invalidate()
    return StatusSet(account_id, status.value, notified)
