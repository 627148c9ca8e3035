"""Termination: a terminated account's data is purged within six months, and the
client (the controller) gets a deletion certificate (TER-1..3).

Terminating an account schedules its purge six calendar months later
(``schedule_purge``, in the transaction that terminates it); the client may ask for
it sooner (``request_purge``). Until then nothing is deleted: the operator can still
hand the client its data. The purge (``purge_account``, run by the workers' daily
chore or at once on request) covers the account and every account below it:

- every row of theirs in every table, in an order the foreign keys allow, except
  their audit events (append-only, and holding no personal data: the evidence) and
  the account rows themselves (tombstones: id, status; nothing personal);
- their keys, destroyed in the key store with erasure-ledger entries, so no backup
  taken before can be read (TER-3);
- a deletion certificate: what was deleted (tables and row counts, keys), when, on
  what schedule, signed with the platform's audit key; no personal data. It is kept
  here, mailed to the account's owners at the addresses they had, and audited.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountStatus
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.mail.account_notices import owners_of
from tidings.mail.service import MailKind, queue_mail, wake_sender
from tidings.privacy.models import AccountPurge
from tidings.privacy.pdf import document_pdf
from tidings.storage.db import SYSTEM, Base
from tidings.users.models import User
from tidings.users.service import user_keys
from tidings.web.errors import Conflict, NotFound

__all__ = ["PURGE_AFTER", "certificate_pdf", "due_purges", "purge_account", "request_purge",
           "schedule_purge", "verify_certificate"]

log = get_logger("tidings.privacy")
PURGE_AFTER = relativedelta(months=6)
# Kept on purpose: the audit trail (append-only, no personal data), the purge record,
# and the breach notices sent to the client (the operator's proof it told them).
_KEPT = frozenset({"audit_events", "account_purges", "breach_notices"})
_OWNER_EMAIL_FIELD = "users.email"
_PURGE_CHUNK = 5000


async def schedule_purge(session: AsyncSession, *, tenant: str, now: datetime) -> AccountPurge:
    """The purge of a just-terminated account, due six calendar months from now."""
    found = await session.get(AccountPurge, tenant)
    if found is not None:
        return found
    purge = AccountPurge(tenant_id=tenant, terminated_at=now, purge_due_at=now + PURGE_AFTER)
    session.add(purge)
    return purge


async def request_purge(rt: Services, *, tenant: str, actor: Actor) -> AccountPurge:
    """The client asks for its data to go now: recorded, then purged at once."""
    async with rt.db.transaction(tenant=tenant) as session:
        purge = await _purge_of(session, tenant)
        if purge.purged_at is None and purge.requested_at is None:
            purge.requested_at = rt.clock.now()
            await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                             table="account_purges", row_id=tenant,
                                             fields=["requested_at"], now=rt.clock.now())])
    return await purge_account(rt, tenant=tenant, actor=actor)


async def _purge_of(session: AsyncSession, tenant: str) -> AccountPurge:
    account = await session.get(Account, tenant)
    if account is None:
        raise NotFound(f"No account {tenant!r}.", code="account_not_found")
    purge = await session.get(AccountPurge, tenant)
    if purge is None or account.status != AccountStatus.TERMINATED:
        raise Conflict("Only a terminated account is purged: terminate it first.",
                       code="account_not_terminated")
    return purge


async def due_purges(rt: Services, *, now: datetime) -> Sequence[str]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return (await session.scalars(select(AccountPurge.tenant_id).where(
            AccountPurge.purged_at.is_(None),
            (AccountPurge.purge_due_at <= now) | AccountPurge.requested_at.is_not(None),
        ).order_by(AccountPurge.purge_due_at))).all()


async def purge_account(rt: Services, *, tenant: str, actor: Actor) -> AccountPurge:
    """Purge the account and those below it; the purge with its certificate. Run twice,
    the second finds it done and changes nothing."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        purge = await _purge_of(session, tenant)
        if purge.purged_at is not None:
            return purge
        accounts = await _subtree(session, tenant)
        owners = await _owner_addresses(rt, session, tenant)
    now = rt.clock.now()
    deleted = await _delete_rows(rt, accounts)
    for account_id in accounts:
        await rt.vault.destroy_tenant_keys(account_id, now=now)
    certificate = _certificate(rt, purge, accounts, deleted, now)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        done = await _purge_of(session, tenant)
        done.purged_at, done.certificate_id = now, certificate["certificate_id"]
        done.certificate = certificate
        await record(session, [audit_row(tenant=tenant, actor=actor, action="account.purged",
                                         table="accounts", row_id=tenant,
                                         fields=["*"], now=now)])
        for address in owners:
            await queue_mail(rt, session, kind=MailKind.PRIVACY, to_address=address,
                             subject="Your Tidings account's data is deleted",
                             body=_certificate_mail(certificate), now=now, actor=actor)
    await rt.db.forget_old_pages()
    if owners:
        wake_sender(rt)
    log.info("account_purged", tenant=tenant, accounts=len(accounts),
             rows=sum(deleted.values()), certificate=certificate["certificate_id"])
    return done


async def _subtree(session: AsyncSession, root: str) -> list[str]:
    """The account and every account below it, root first."""
    found, frontier = [root], [root]
    while frontier:
        frontier = list((await session.scalars(select(Account.id).where(
            Account.parent_id.in_(frontier)))).all())
        found += frontier
    return found


async def _owner_addresses(rt: Services, session: AsyncSession, tenant: str) -> list[str]:
    """Where the certificate goes: the owners' addresses, read before their rows go."""
    ids = await owners_of(session, tenant)
    owners = (await session.scalars(select(User).where(User.id.in_(ids)))).all()
    return [(await user_keys(rt, user)).decrypt(user.email_enc, field=_OWNER_EMAIL_FIELD)
            for user in owners]


async def _delete_rows(rt: Services, accounts: Sequence[str]) -> dict[str, int]:
    """Every row of ``accounts`` in every table (children before parents), a chunk an
    erasing transaction, so that a large account never holds the write lock long
    (sends go on meanwhile); rows deleted by table. Stopped halfway, a rerun goes on."""
    deleted: dict[str, int] = {}
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in _KEPT or "tenant_id" not in table.c:
            continue
        key = tuple_(*table.primary_key.columns)
        chosen = select(*table.primary_key.columns).where(
            table.c.tenant_id.in_(list(accounts))).limit(_PURGE_CHUNK)
        while True:
            async with rt.db.erasing(tenant=SYSTEM, forget=False) as session:
                result = await session.execute(delete(table).where(key.in_(chosen)))
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            if count:
                deleted[str(table.name)] = deleted.get(str(table.name), 0) + count
            if count < _PURGE_CHUNK:
                break
    return deleted


def _certificate(rt: Services, purge: AccountPurge, accounts: Sequence[str],
                 deleted: dict[str, int], now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "certificate_id": new_id("cert"), "type": "deletion_certificate", "version": 1,
        "account_id": purge.tenant_id, "accounts": list(accounts),
        "terminated_at": purge.terminated_at.isoformat(),
        "purge_due_at": purge.purge_due_at.isoformat(),
        "requested_early_at": purge.requested_at.isoformat() if purge.requested_at else None,
        "purged_at": now.isoformat(),
        "deleted_rows": dict(sorted(deleted.items())),
        "keys_destroyed": {"accounts": len(accounts),
                           "what": "each account's key-encryption keys and every data, "
                                   "index and personal key under them"},
        "kept": {"audit_events": "append-only; names of fields and tokens, no values",
                 "accounts": "the account ids and their status, no name or contact"},
        "backups": "earlier backups hold the deleted rows encrypted under the destroyed "
                   "keys: unreadable; the erasure ledger deletes them again on restore",
    }
    body["signature"] = _sign(rt, body)
    return body


def _sign(rt: Services, body: dict[str, Any]) -> str:
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    return hmac.new(rt.vault.audit_key, b"certificate\x00" + orjson.dumps(
        unsigned, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()


def verify_certificate(rt: Services, certificate: dict[str, Any]) -> bool:
    """Whether the certificate is one this platform issued, unaltered."""
    return hmac.compare_digest(str(certificate.get("signature", "")),
                               _sign(rt, certificate))


def _certificate_mail(certificate: dict[str, Any]) -> str:
    rows = sum(certificate["deleted_rows"].values())
    return (f"The data of your account {certificate['account_id']} was deleted on "
            f"{certificate['purged_at'][:10]}: {rows} records in "
            f"{len(certificate['deleted_rows'])} tables, and the keys it was encrypted "
            f"under. Deletion certificate {certificate['certificate_id']}, signature "
            f"{certificate['signature']}.\n")


def certificate_pdf(certificate: dict[str, Any]) -> bytes:
    """The certificate as a PDF (the JSON is the authoritative form)."""
    return document_pdf(f"Deletion certificate {certificate['certificate_id']}",
                        _pdf_lines(certificate))


def _pdf_lines(certificate: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [(key.replace("_", " "), str(certificate[key])) for key in (
        "certificate_id", "account_id", "terminated_at", "purge_due_at",
        "requested_early_at", "purged_at")]
    lines += [(f"rows deleted from {table}", str(count))
              for table, count in certificate["deleted_rows"].items()]
    lines += [("accounts purged", ", ".join(certificate["accounts"])),
              ("keys destroyed", certificate["keys_destroyed"]["what"]),
              ("signature (HMAC-SHA256)", certificate["signature"])]
    return lines


async def purge_count(session: AsyncSession, tenant: str) -> int:
    """Rows left of ``tenant`` in the tables a purge empties (0 once purged)."""
    total = 0
    for table in Base.metadata.sorted_tables:
        if table.name not in _KEPT and "tenant_id" in table.c:
            total += int(await session.scalar(select(func.count()).select_from(table).where(
                table.c.tenant_id == tenant)) or 0)
    return total
