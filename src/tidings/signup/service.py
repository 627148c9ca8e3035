"""Signing up: a pending account, its owner and a link to confirm the address, in one
transaction; and confirming the address with the link's token.

The answer to a sign-up is the same whether the address is new or has a user already,
and costs the same (the password is hashed either way): an address that has a user
gets a mail saying someone tried to sign up with it, never a second account.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import AccountStatus
from tidings.accounts.permissions import Role
from tidings.accounts.service import do_create_account, new_account_id
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.core.services import Services
from tidings.mail.service import MailKind, queue_mail, wake_sender
from tidings.signup.models import AccountVerification, VerificationStatus
from tidings.signup.tokens import (
    CONFIRMATION_LIFETIME,
    check_address,
    confirmation_token,
    invalid_token,
    read_confirmation,
)
from tidings.storage.db import SYSTEM
from tidings.users.credentials import PasswordRefused
from tidings.users.models import User, UserStatus
from tidings.users.passwords import WeakPassword, check_new_password, hash_password
from tidings.users.service import EMAIL_FIELD, check_email, email_index
from tidings.web.errors import Forbidden, InvalidRequest

SIGNUP_ACTOR = Actor("system", "signup")
COMPANY_MAX_CHARS = 200


@dataclass(frozen=True)
class SignUp:
    company: str
    email: str
    password: str
    country: str


def ensure_open(rt: Services) -> None:
    if rt.settings.signup != "open":
        raise Forbidden("Sign-up is closed on this platform; ask its operator for an "
                        "account.", code="signup_closed")


def check_company(raw: str) -> str:
    name = " ".join(raw.split())
    if not name or len(name) > COMPANY_MAX_CHARS:
        raise InvalidRequest(f"The company name must have 1 to {COMPANY_MAX_CHARS} "
                             "characters.", code="invalid_company", parameter="company")
    return name


def check_country(raw: str) -> str:
    """An ISO 3166-1 alpha-2 code (``DE``), as libphonenumber knows the regions."""
    code = raw.strip().upper()
    if len(code) != 2 or code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidRequest(f"{raw[:20]!r} is not an ISO 3166-1 alpha-2 country code "
                             "(such as DE or US).", code="invalid_country",
                             parameter="country")
    return code


async def check_password(password: str, *, email: str) -> None:
    try:
        await asyncio.to_thread(check_new_password, password, email=email)
    except WeakPassword as exc:
        raise PasswordRefused(exc.detail, code="weak_password", rule=exc.rule,
                              parameter="password") from None


async def sign_up(rt: Services, form: SignUp) -> None:
    """Create the pending account and its owner, or tell the address's user that someone
    tried; raises only for a closed sign-up or bad input, before anything is written."""
    ensure_open(rt)
    company, email = check_company(form.company), check_email(form.email)
    country = check_country(form.country)
    await check_password(form.password, email=email)
    hashed = await asyncio.to_thread(hash_password, form.password)  # argon2, either way
    index = await email_index(rt, email)
    if await _user_of(rt, index) is None:
        try:
            await _create(rt, company=company, email=email, country=country,
                          password_hash=hashed, index=index)
            wake_sender(rt)
            return
        except IntegrityError:
            pass  # the address got a user meanwhile: tell that one instead
    existing = await _user_of(rt, index)
    if existing is not None:
        await _tell_existing(rt, existing)
        wake_sender(rt)


async def _user_of(rt: Services, index: str) -> User | None:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user: User | None = await session.scalar(select(User).where(User.email_index == index))
        return user


async def _create(rt: Services, *, company: str, email: str, country: str,
                  password_hash: str, index: str) -> None:
    account_id = new_account_id()
    keys = await rt.vault.keys_for(account_id)
    platform, now = await rt.vault.platform_keys(), rt.clock.now()
    async with rt.db.transaction(tenant=account_id) as session:
        await do_create_account(session, keys=keys, name=company, parent_id=None,
                                status=AccountStatus.PENDING_VERIFICATION,
                                actor=SIGNUP_ACTOR, now=now)
        user = User(id=new_id("usr"), tenant_id=account_id,
                    email_enc=keys.encrypt(email, field=EMAIL_FIELD), email_index=index,
                    role=Role.OWNER.value, status=UserStatus.ACTIVE.value,
                    password_hash=password_hash, password_temporary_until=None,
                    password_changed_at=now, failed_logins=0, created_at=now, updated_at=now)
        session.add(user)
        await session.flush()  # the unique address index: a race is an IntegrityError
        verification_id = new_id("avr")
        session.add(AccountVerification(
            id=verification_id, tenant_id=account_id,
            status=VerificationStatus.AWAITING_DETAILS.value, country=country,
            legal_name=company, created_at=now, updated_at=now))
        await record(session, [
            audit_row(tenant=account_id, actor=SIGNUP_ACTOR, action="user.create",
                      table="users", row_id=user.id, fields=["email", "role", "password"],
                      now=now),
            audit_row(tenant=account_id, actor=SIGNUP_ACTOR, action="create",
                      table="account_verifications", row_id=verification_id,
                      fields=["legal_name", "country"], now=now)])
        token = confirmation_token(platform, user=user, expires_at=now + CONFIRMATION_LIFETIME)
        await queue_mail(rt, session, kind=MailKind.ADDRESS_CONFIRMATION,
                         subject="Confirm your e-mail address", body=_confirm_text(rt, token),
                         now=now, actor=SIGNUP_ACTOR, to_user_id=user.id,
                         account_id=account_id)


def confirmation_link(rt: Services, token: str) -> str:
    return f"{rt.settings.public_url.rstrip('/')}/signup/confirm?token={token}"


def _confirm_text(rt: Services, token: str) -> str:
    days = CONFIRMATION_LIFETIME.days
    return (f"Welcome to Tidings.\n\nConfirm your e-mail address with this link within "
            f"{days} days:\n\n{confirmation_link(rt, token)}\n\n"
            f"(Or send the token to POST /v1/signup/confirm: {token})\n\n"
            "Then log in, and tell us about your company (PUT /v1/account/verification): "
            "we verify every account before it may send.\n\n"
            "If you did not sign up, ignore this mail.")


async def _tell_existing(rt: Services, user: User) -> None:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=user.tenant_id or SYSTEM) as session:
        await queue_mail(rt, session, kind=MailKind.ADDRESS_CONFIRMATION,
                         subject="Someone tried to sign up with your address",
                         body=("Someone tried to create a Tidings account with this e-mail "
                               "address, which has an account already. Nothing was "
                               "changed. If it was you, log in instead; if not, you need "
                               "do nothing."),
                         now=now, actor=SIGNUP_ACTOR, to_user_id=user.id,
                         account_id=user.tenant_id)


async def confirm_address(rt: Services, token: str) -> None:
    """Mark the address of the token's user confirmed (once; again is no change)."""
    platform, now = await rt.vault.platform_keys(), rt.clock.now()
    content = read_confirmation(platform, token, now=now)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        user = await session.get(User, content.user_id)
        if user is None or user.tenant_id is None:
            raise invalid_token()
        check_address(platform, content, user)
        await _mark_confirmed(session, tenant=user.tenant_id, user_id=user.id, now=now)


async def _mark_confirmed(session: AsyncSession, *, tenant: str, user_id: str,
                          now: datetime) -> None:
    verification = await session.scalar(select(AccountVerification).where(
        AccountVerification.tenant_id == tenant))
    if verification is None or verification.email_confirmed_at is not None:
        return
    verification.email_confirmed_at = now
    verification.updated_at = now
    await record(session, [audit_row(tenant=tenant, actor=Actor("user", user_id),
                                     action="update", table="account_verifications",
                                     row_id=verification.id, fields=["email_confirmed_at"],
                                     now=now)])
