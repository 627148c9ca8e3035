"""Account verification: the owner tells who the company is, the operator decides.

The owner fills in the details (``submit_details``) while the account is pending (or
a trial that wants to be made active); the operator lists what waits
(``pending_verifications``) and makes the account a trial or active, or rejects it with
a reason (``decide``). The account's owners are e-mailed the outcome in the decision's
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.permissions import Role
from tidings.accounts.service import do_update_account, get_account
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.core.services import Services
from tidings.mail.service import MailKind, queue_mail, wake_sender
from tidings.signup.models import (
    CONTACT_EMAIL_FIELD,
    CONTACT_NAME_FIELD,
    CONTACT_PHONE_FIELD,
    INTENDED_USE_FIELD,
    AccountVerification,
    VerificationStatus,
)
from tidings.signup.trials import start_usage
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.users.models import User, UserStatus
from tidings.web.errors import Conflict, InvalidRequest, NotFound

TABLE = "account_verifications"


class Outcome(StrEnum):
    TRIAL = "trial"
    ACTIVE = "active"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Details:
    """What the owner tells, checked (``signup/schemas.py`` and the service's checks)."""

    legal_name: str
    country: str
    registration_number: str
    contact_name: str
    contact_email: str
    contact_phone: str | None
    intended_use: str


DETAIL_FIELDS = [field.name for field in fields(Details)]  # what the audit event names


@dataclass(frozen=True)
class VerificationView:
    account_id: str
    account_name: str
    account_status: str
    status: str
    email_confirmed: bool
    details: Details | None
    submitted_at: datetime | None
    decision: str | None
    decision_note: str | None
    decided_at: datetime | None


async def find(session: AsyncSession, *, tenant: str) -> AccountVerification | None:
    found: AccountVerification | None = await session.scalar(
        select(AccountVerification).where(AccountVerification.tenant_id == tenant))
    return found


async def do_submit_details(session: AsyncSession, *, keys: TenantKeys, details: Details,
                            actor: Actor, now: datetime) -> AccountVerification:
    """Store the owner's details and put the account before the operator."""
    account = await get_account(session, account_id=keys.tenant_id)
    if account.status not in (AccountStatus.PENDING_VERIFICATION, AccountStatus.TRIAL):
        raise Conflict(f"The account is {account.status}: there is nothing to verify.",
                       code="verification_closed", account_status=account.status)
    row = await find(session, tenant=keys.tenant_id)
    action = "update"
    if row is None:  # an account the operator made pending, without a sign-up
        row = AccountVerification(id=new_id("avr"), tenant_id=keys.tenant_id,
                                  created_at=now, updated_at=now)
        session.add(row)
        action = "create"
    _fill(row, keys, details)
    row.status, row.submitted_at, row.updated_at = VerificationStatus.SUBMITTED.value, now, now
    await record(session, [audit_row(tenant=keys.tenant_id, actor=actor, action=action,
                                     table=TABLE, row_id=row.id,
                                     fields=[*DETAIL_FIELDS, "status"], now=now)])
    return row


def _fill(row: AccountVerification, keys: TenantKeys, details: Details) -> None:
    row.legal_name, row.country = details.legal_name, details.country
    row.registration_number = details.registration_number
    row.contact_name_enc = keys.encrypt(details.contact_name, field=CONTACT_NAME_FIELD)
    row.contact_email_enc = keys.encrypt(details.contact_email, field=CONTACT_EMAIL_FIELD)
    row.contact_phone_enc = (keys.encrypt(details.contact_phone, field=CONTACT_PHONE_FIELD)
                             if details.contact_phone else None)
    row.intended_use_enc = keys.encrypt(details.intended_use, field=INTENDED_USE_FIELD)


def view(row: AccountVerification | None, account: Account,
         keys: TenantKeys) -> VerificationView:
    if row is None:
        return VerificationView(account.id, account.name, account.status,
                                VerificationStatus.AWAITING_DETAILS.value, False, None, None,
                                None, None, None)
    return VerificationView(account.id, account.name, account.status, row.status,
                            row.email_confirmed_at is not None, _details(row, keys),
                            row.submitted_at, row.decision, row.decision_note,
                            row.decided_at)


def _details(row: AccountVerification, keys: TenantKeys) -> Details | None:
    if row.submitted_at is None or row.contact_name_enc is None:
        return None

    def opened(value: bytes | None, field: str) -> str:
        return keys.decrypt(value, field=field) if value is not None else ""

    return Details(row.legal_name or "", row.country or "", row.registration_number or "",
                   opened(row.contact_name_enc, CONTACT_NAME_FIELD),
                   opened(row.contact_email_enc, CONTACT_EMAIL_FIELD),
                   opened(row.contact_phone_enc, CONTACT_PHONE_FIELD) or None,
                   opened(row.intended_use_enc, INTENDED_USE_FIELD))


async def account_verification(rt: Services, *, account_id: str) -> VerificationView:
    keys = await rt.vault.keys_for(account_id)
    async with rt.db.transaction(tenant=account_id, write=False) as session:
        account = await get_account(session, account_id=account_id)
        return view(await find(session, tenant=account_id), account, keys)


async def pending_verifications(rt: Services) -> list[VerificationView]:
    """Submitted verifications that wait for the operator, oldest first."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.execute(
            select(AccountVerification, Account)
            .join(Account, Account.id == AccountVerification.tenant_id)
            .where(AccountVerification.status == VerificationStatus.SUBMITTED.value)
            .order_by(AccountVerification.submitted_at, AccountVerification.id))).all()
    return [view(row, account, await rt.vault.keys_for(account.id)) for row, account in rows]


def check_outcome(raw: str) -> Outcome:
    try:
        return Outcome(raw)
    except ValueError:
        raise InvalidRequest(f"There is no outcome {raw[:20]!r}; it is trial, active or "
                             "rejected.", code="invalid_outcome", parameter="outcome") from None


def check_note(raw: str | None, *, required: bool) -> str | None:
    note = (raw or "").strip() or None
    if required and note is None:
        raise InvalidRequest("A rejection needs a reason the client can act on.",
                             code="reason_required", parameter="reason")
    if note is not None and len(note) > 1000:
        raise InvalidRequest("The note is longer than 1000 characters.", code="invalid_note",
                             parameter="note")
    return note


async def decide(rt: Services, *, account_id: str, outcome: Outcome, note: str | None,
                 actor: Actor) -> VerificationView:
    """The operator's decision, applied and mailed to the account's owners at once."""
    note = check_note(note, required=outcome == Outcome.REJECTED)
    if not account_id.startswith("acc_") or len(account_id) > 40:
        raise NotFound(f"No account {account_id[:40]!r}.", code="account_not_found")
    keys, now = await rt.vault.keys_for(account_id), rt.clock.now()
    async with rt.db.transaction(tenant=account_id) as session:
        account = await get_account(session, account_id=account_id)
        row = await find(session, tenant=account_id)
        _check_decidable(account, row, outcome)
        assert row is not None
        await _apply(session, account, row, outcome, note, actor, now)
        await _mail_owners(rt, session, account, outcome, note, actor, now)
        answer = view(row, account, keys)
    rt.auth.invalidate()  # the account's status is cached with its credentials
    wake_sender(rt)
    return answer


def _check_decidable(account: Account, row: AccountVerification | None,
                     outcome: Outcome) -> None:
    allowed = {AccountStatus.PENDING_VERIFICATION.value}
    if outcome == Outcome.ACTIVE:
        allowed.add(AccountStatus.TRIAL.value)
    if account.status not in allowed:
        raise Conflict(f"A {account.status} account cannot be "
                       f"{'rejected' if outcome == Outcome.REJECTED else 'made ' + outcome}.",
                       code="account_not_pending", account_status=account.status)
    if row is None or row.submitted_at is None:
        raise Conflict("The account has not filled in its verification yet.",
                       code="verification_not_submitted")


async def _apply(session: AsyncSession, account: Account, row: AccountVerification,
                 outcome: Outcome, note: str | None, actor: Actor, now: datetime) -> None:
    if outcome != Outcome.REJECTED:
        await do_update_account(session, account=account, actor=actor, now=now,
                                status=AccountStatus(outcome.value))
    if outcome == Outcome.TRIAL:
        await start_usage(session, tenant=account.id, now=now)
    row.status = (VerificationStatus.REJECTED if outcome == Outcome.REJECTED
                  else VerificationStatus.APPROVED).value
    row.decision, row.decision_note, row.decided_at = outcome.value, note, now
    row.decided_by, row.updated_at = f"{actor.type}:{actor.id}"[:60], now
    await record(session, [audit_row(tenant=account.id, actor=actor, action="update",
                                     table=TABLE, row_id=row.id,
                                     fields=["status", "decision", "decision_note"],
                                     now=now)])


async def _mail_owners(rt: Services, session: AsyncSession, account: Account,
                       outcome: Outcome, note: str | None, actor: Actor,
                       now: datetime) -> None:
    owners = (await session.scalars(select(User.id).where(
        User.tenant_id == account.id, User.role == Role.OWNER.value,
        User.status == UserStatus.ACTIVE.value))).all()
    subject, body = outcome_mail(rt, account, outcome, note)
    kind = MailKind.VERIFICATION if outcome == Outcome.REJECTED else MailKind.ACCOUNT_VERIFIED
    for owner in owners:
        await queue_mail(rt, session, kind=kind, subject=subject, body=body, now=now,
                         actor=actor, to_user_id=owner, account_id=account.id)


def outcome_mail(rt: Services, account: Account, outcome: Outcome,
                 note: str | None) -> tuple[str, str]:
    said = f"\n\nA note from us: {note}" if note and outcome != Outcome.REJECTED else ""
    if outcome == Outcome.TRIAL:
        allowance = rt.settings.trial_message_allowance
        return ("Your account is verified: your free trial starts",
                f"{account.name} ({account.id}) is verified and starts as a free trial: "
                f"it may send {allowance} messages, to numbers it has verified with a "
                f"code (POST /v1/verified-numbers).{said}")
    if outcome == Outcome.ACTIVE:
        return ("Your account is verified and active",
                f"{account.name} ({account.id}) is verified and active: it may send to "
                f"any number.{said}")
    return ("Your account could not be verified yet",
            f"We could not verify {account.name} ({account.id}) yet: {note}\n\n"
            "Correct the details (PUT /v1/account/verification) and we will look again.")
