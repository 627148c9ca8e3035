"""Queueing the platform's own mail: a job written in the caller's transaction.

``queue_mail`` adds a ``mail.send`` job beside whatever change asked for the mail, so a
committed change means the mail will go and a rolled-back one means it never will. The
job holds no personal data in clear: the recipient is a user id (its address is read
and decrypted when the mail goes) or an address sealed under the platform's keys, and
the subject and body are sealed too. The job's ref_id is the mail's id, which becomes
its ``Message-ID`` and its entry in the mailbox: the sender sends an id once.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.jobs.outbox import Job, enqueue_rows, job_row
from tidings.messaging.addresses import AddressError, normalize_email
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.users.models import User
from tidings.web.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from tidings.core.services import Services

MAIL_JOB = "mail.send"
JOB_FIELD = "platform_mail.job"  # what a job's sealed address, subject and body are bound to
AUDIT_TABLE = "platform_mail"
SUBJECT_MAX_CHARS = 200
BODY_MAX_CHARS = 20_000


class MailKind(StrEnum):
    """Why the platform writes: each mail says which, in the mailbox and the logs."""

    ADDRESS_CONFIRMATION = "address_confirmation"  # confirm the address a sign-up gave
    VERIFICATION = "verification"  # the account's verification: what is asked, its state
    ACCOUNT_VERIFIED = "account_verified"  # the outcome: trial or active
    SUSPENSION = "suspension"  # the account is suspended, and why
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a kind of mail, not a password)
    MAINTENANCE = "maintenance"  # the operator's notices (``tidings notices send``)
    PRIVACY = "privacy"  # a data subject request: forwarded, due soon, to tell the person
    BREACH = "breach"  # a personal data breach: the notice to a client, staff's escalation
    LEGAL = "legal"  # a new sub-processor or policy version, with the time left to object


def check_kind(raw: str) -> MailKind:
    try:
        return MailKind(raw)
    except ValueError:
        kinds = ", ".join(kind.value for kind in MailKind)
        raise InvalidRequest(f"There is no mail kind {raw[:40]!r}; the kinds are {kinds}.",
                             code="unknown_mail_kind", parameter="kind") from None


def check_subject(raw: str) -> str:
    """One line of text, not empty, at most ``SUBJECT_MAX_CHARS``."""
    subject = raw.strip()
    if not subject:
        raise InvalidRequest("The subject is empty.", code="invalid_subject",
                             parameter="subject")
    if len(subject) > SUBJECT_MAX_CHARS:
        raise InvalidRequest(f"The subject is longer than {SUBJECT_MAX_CHARS} characters.",
                             code="invalid_subject", parameter="subject")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in subject):
        raise InvalidRequest("The subject must be one line, without control characters.",
                             code="invalid_subject", parameter="subject")
    return subject


def check_body(raw: str) -> str:
    if not raw.strip():
        raise InvalidRequest("The body is empty.", code="invalid_body", parameter="body")
    if len(raw) > BODY_MAX_CHARS:
        raise InvalidRequest(f"The body is longer than {BODY_MAX_CHARS} characters.",
                             code="invalid_body", parameter="body")
    return raw


def check_address(raw: str) -> str:
    try:
        return normalize_email(raw.strip())
    except AddressError as exc:
        raise InvalidRequest(f"The e-mail address is not valid: {exc}.", code=exc.code,
                             parameter="to") from None


async def queue_mail(rt: Services, session: AsyncSession, *, kind: MailKind | str,
                     subject: str, body: str, now: datetime, actor: Actor,
                     to_user_id: str | None = None, to_address: str | None = None,
                     account_id: str | None = None, mail_id: str | None = None,
                     audit_action: str = "mail.queue") -> str:
    """Queue a mail in ``session``'s transaction; its id.

    To a user (``to_user_id``: its address as it is when the mail goes) or to an address
    (``to_address``), exactly one. ``account_id`` is the account the mail is about: the
    job is that tenant's (a session opened for a tenant must name it), and the audit
    event naming ``actor`` goes to its trail; without one the job is the platform's
    (a ``SYSTEM`` session). A ``mail_id`` whose job is still waiting is not queued again.
    Bad input raises ``InvalidRequest`` (``NotFound`` for a user not of ``account_id``)
    before anything is written.
    """
    if (to_user_id is None) == (to_address is None):
        raise ValueError("queue_mail takes exactly one of to_user_id and to_address")
    chosen, subject, body = check_kind(kind), check_subject(subject), check_body(body)
    address = check_address(to_address) if to_address is not None else None
    if to_user_id is not None:
        await _check_recipient(session, to_user_id, account_id)
    mail_id = mail_id or new_id("mail")
    if await _waiting(session, mail_id):
        return mail_id
    platform = await rt.vault.platform_keys()
    payload = {"kind": chosen.value, "account_id": account_id, "to_user_id": to_user_id,
               "sealed": seal(platform, {"to": address, "subject": subject, "body": body})}
    await enqueue_rows(session, [job_row(tenant=account_id or SYSTEM, kind=MAIL_JOB,
                                         ref_id=mail_id, now=now, payload=payload)])
    if account_id is not None:
        fields = ["subject", "body"] + (["to"] if address is not None else [])
        await record(session, [audit_row(tenant=account_id, actor=actor, action=audit_action,
                                         table=AUDIT_TABLE, row_id=mail_id, fields=fields,
                                         now=now)])
    return mail_id


def wake_sender(rt: Services) -> None:
    """After the commit: start the mail's job at once rather than at the next poll."""
    rt.wakeups.notify(MAIL_JOB)


async def _check_recipient(session: AsyncSession, user_id: str, account_id: str | None) -> None:
    """The user exists and belongs to the account the mail is about (staff: to none)."""
    account = User.tenant_id.is_(None) if account_id is None else User.tenant_id == account_id
    if await session.scalar(select(User.id).where(User.id == user_id, account)) is None:
        raise NotFound(f"No user {user_id[:60]!r} in this account.", code="user_not_found",
                       parameter="to_user_id")


async def _waiting(session: AsyncSession, mail_id: str) -> bool:
    found = await session.scalar(select(Job.id).where(Job.kind == MAIL_JOB,
                                                      Job.ref_id == mail_id).limit(1))
    return found is not None


def seal(platform: TenantKeys, private: dict[str, Any]) -> str:
    return base64.b64encode(platform.encrypt(json.dumps(private), field=JOB_FIELD)).decode()


def unseal(platform: TenantKeys, sealed: str) -> dict[str, Any]:
    opened: dict[str, Any] = json.loads(platform.decrypt(base64.b64decode(sealed),
                                                         field=JOB_FIELD))
    return opened
