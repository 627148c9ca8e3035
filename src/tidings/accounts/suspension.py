"""Suspending and resuming an account, with why and by whom. Services flush, never commit.

A suspension holds back the account's whole subtree on every front door: API keys
(``auth.Authenticator``) and SMPP binds (``smpp_gateway.gateway``) read the status of
every account above the one acting (``service.effective_status``). Lifting it restores
them. An account above may suspend a sub-account and lift a suspension it (or an
account below it) made; only the operator lifts the operator's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountStatus
from tidings.audit.service import Actor, audit_row, record
from tidings.privacy.termination import schedule_purge
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, Forbidden, InvalidRequest

REASON_FIELD = "accounts.status_reason"
OPERATOR = "operator"  # ``suspended_by`` of the operator's suspensions
MAX_REASON_CHARS = 500


async def do_set_status(session: AsyncSession, *, account: Account, keys: TenantKeys,
                        status: AccountStatus, reason: str | None, by: str, actor: Actor,
                        now: datetime) -> Account:
    """Change an account's status (``by``: ``OPERATOR`` or the acting account's id),
    in a transaction of the account itself."""
    if account.status == AccountStatus.TERMINATED:
        raise Conflict("A terminated account cannot change status.", code="account_terminated")
    reason = None if reason is None else _checked(reason)
    changed = ["status"] if status.value != account.status else []
    if status == AccountStatus.SUSPENDED and account.status != AccountStatus.SUSPENDED:
        account.suspended_from, account.suspended_by = account.status, by
        changed.append("suspended_by")
    elif status != AccountStatus.SUSPENDED:
        account.suspended_from = account.suspended_by = None
    if reason is not None:
        account.status_reason_enc = keys.encrypt(reason, field=REASON_FIELD)
        changed.append("status_reason")
    elif status in (AccountStatus.ACTIVE, AccountStatus.TRIAL):
        account.status_reason_enc = None
    account.status = status.value
    if status == AccountStatus.TERMINATED:  # its data goes within six months (TER-1)
        await schedule_purge(session, tenant=account.id, now=now)
    if changed:
        account.updated_at = now
        await record(session, [audit_row(tenant=account.id, actor=actor, action="update",
                                         table="accounts", row_id=account.id, fields=changed,
                                         now=now)])
    return account


async def do_suspend(session: AsyncSession, *, account: Account, keys: TenantKeys,
                     reason: str, by: str, actor: Actor, now: datetime) -> Account:
    if account.status == AccountStatus.SUSPENDED:
        raise Conflict("The account is already suspended.", code="account_already_suspended")
    return await do_set_status(session, account=account, keys=keys,
                               status=AccountStatus.SUSPENDED, reason=reason, by=by,
                               actor=actor, now=now)


async def do_resume(session: AsyncSession, *, account: Account, keys: TenantKeys,
                    reason: str | None, chain: Sequence[Account], by: str, actor: Actor,
                    now: datetime) -> Account:
    """Lift a suspension ``by`` an account above (``chain``: the account's ancestry),
    back to the status it had."""
    if account.status != AccountStatus.SUSPENDED:
        raise Conflict("The account is not suspended.", code="account_not_suspended")
    if not may_lift(account.suspended_by, by=by, chain=chain):
        raise Forbidden("The account was suspended from above yours; only who suspended "
                        "it may lift that.", code="suspension_not_yours")
    previous = AccountStatus(account.suspended_from or AccountStatus.ACTIVE)
    if previous == AccountStatus.SUSPENDED:
        previous = AccountStatus.ACTIVE
    return await do_set_status(session, account=account, keys=keys, status=previous,
                               reason=reason, by=by, actor=actor, now=now)


def may_lift(suspended_by: str | None, *, by: str, chain: Sequence[Account]) -> bool:
    """Whether ``by`` may lift a suspension made by ``suspended_by``: the operator may
    lift any; an account one it made or one made by an account below it."""
    if by == OPERATOR:
        return True
    if suspended_by is None or suspended_by == OPERATOR:
        return False
    ids = [a.id for a in chain]
    return (by in ids and suspended_by in ids
            and ids.index(by) >= ids.index(suspended_by))


def reason_of(account: Account, keys: TenantKeys) -> str | None:
    if account.status_reason_enc is None:
        return None
    return keys.decrypt(account.status_reason_enc, field=REASON_FIELD)


def _checked(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"A reason is 1 to {MAX_REASON_CHARS} characters.",
                             code="invalid_reason")
    return reason
