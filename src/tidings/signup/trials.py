"""What a trial account may send: to numbers it verified, up to its allowance.

The send path (``messaging/sending.py``) asks ``admit`` only for a trial account, so an
active account's sends cost no query here. For a trial the check runs in the very
transaction that stores the messages: the count lives in one ``trial_usage`` row per
account, read under a row lock (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write
transactions are serial), so processes sending at once cannot both take the last
message, and a message refused or rolled back is never counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.signup.models import VERIFIED_NUMBER_FIELD, TrialUsage, VerifiedNumber
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Forbidden, TidingsError

TRIAL_RECIPIENT_NOT_VERIFIED = "trial_recipient_not_verified"
TRIAL_ALLOWANCE_USED = "trial_allowance_used"


def number_index(keys: TenantKeys, number: str) -> str:
    """A verified number's blind index under the account's own key."""
    return keys.blind_index(number, field=VERIFIED_NUMBER_FIELD)


def not_verified() -> Forbidden:
    return Forbidden("A trial account sends only to numbers it has verified "
                     "(POST /v1/verified-numbers).", code=TRIAL_RECIPIENT_NOT_VERIFIED)


def allowance_used(allowance: int) -> Forbidden:
    return Forbidden(f"The trial's {allowance} free messages are used; ask for the account "
                     "to be made active.", code=TRIAL_ALLOWANCE_USED, allowance=allowance)


async def admit(session: AsyncSession, *, keys: TenantKeys, recipients: Sequence[str],
                allowance: int, now: datetime) -> list[TidingsError | None]:
    """For each recipient in order: None when its message may go (it is counted now), or
    the refusal. Call it in the transaction that stores the admitted messages."""
    indexes = [number_index(keys, to) for to in recipients]
    verified = await _verified(session, keys.tenant_id, set(indexes))
    refusals: list[TidingsError | None] = [None if i in verified else not_verified()
                                           for i in indexes]
    granted = await _take(session, keys.tenant_id, refusals.count(None), allowance, now)
    for position, refusal in enumerate(refusals):
        if refusal is None:
            if granted == 0:
                refusals[position] = allowance_used(allowance)
            else:
                granted -= 1
    return refusals


async def _verified(session: AsyncSession, tenant: str, indexes: set[str]) -> set[str]:
    rows = await session.scalars(select(VerifiedNumber.number_index).where(
        VerifiedNumber.tenant_id == tenant, VerifiedNumber.number_index.in_(indexes),
        VerifiedNumber.verified_at.is_not(None)))
    return set(rows.all())


async def _take(session: AsyncSession, tenant: str, wanted: int, allowance: int,
                now: datetime) -> int:
    """Count up to ``wanted`` messages against the allowance; how many it took."""
    if wanted == 0:
        return 0
    usage = await session.get(TrialUsage, tenant, with_for_update=True)
    if usage is None:
        # The row is made when the operator grants the trial; one made otherwise (a
        # trial parent's sub-account) starts here. Two processes racing to insert it:
        # the loser's transaction fails on the primary key and its caller retries.
        usage = TrialUsage(tenant_id=tenant, messages_sent=0, updated_at=now)
        session.add(usage)
        await session.flush()
    granted = max(0, min(wanted, allowance - usage.messages_sent))
    if granted:
        usage.messages_sent += granted
        usage.updated_at = now
    return granted


async def messages_sent(session: AsyncSession, *, tenant: str) -> int:
    usage = await session.get(TrialUsage, tenant)
    return usage.messages_sent if usage is not None else 0


async def start_usage(session: AsyncSession, *, tenant: str, now: datetime) -> None:
    """The trial's counter, made with the trial; an account that was a trial before
    (suspended, then pending again) keeps what it sent then."""
    if await session.get(TrialUsage, tenant) is None:
        session.add(TrialUsage(tenant_id=tenant, messages_sent=0, updated_at=now))


async def give_back(session: AsyncSession, *, tenant: str, count: int, now: datetime) -> None:
    """Uncount ``count`` admitted messages that another limit (the monthly cap) refused,
    in the same transaction: a refused message never counts."""
    usage = await session.get(TrialUsage, tenant, with_for_update=True)
    if usage is not None:
        usage.messages_sent = max(0, usage.messages_sent - count)
        usage.updated_at = now
