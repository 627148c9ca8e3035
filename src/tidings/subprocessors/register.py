"""The register's entries: recorded, changed while proposed, notified, retired.

Services take a session and flush, never commit. The notices to clients are written by
the ``subprocessors.notify`` job (``notices.py``) that ``do_notify`` queues in its
transaction, so that publishing to thousands of clients is neither one long
transaction nor lost in a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from babel import Locale
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.audit.service import Actor, actor_label
from tidings.core.data_categories import CATEGORIES
from tidings.core.ids import new_id
from tidings.jobs.outbox import enqueue_rows, job_row
from tidings.storage.db import SYSTEM
from tidings.subprocessors.models import (
    Lifecycle,
    Resolution,
    Status,
    Subprocessor,
    SubprocessorNotice,
)
from tidings.subprocessors.schemas import CreateSubprocessor, SubprocessorFields
from tidings.web.errors import Conflict, InvalidRequest, NotFound

# The DPA: a client may object "within thirty (30) days of the Processor informing"
# it; the sub-processor applies to nobody before (SUB-2).
NOTICE_PERIOD = timedelta(days=30)
NOTIFY_JOB = "subprocessors.notify"
# Codes babel lists among territories that are not a country a company processes in.
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "ZZ", "QO"})
COUNTRIES = frozenset(code for code in map(str, Locale("en").territories)
                      if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES)


def status_at(entry: Subprocessor, now: datetime, *, objections: int) -> Status:
    """SUB-1's status at ``now``; ``objections``: clients kept off it by an objection."""
    if entry.lifecycle == Lifecycle.PROPOSED:
        return Status.PROPOSED
    if entry.lifecycle == Lifecycle.RETIRED:
        return Status.RETIRED
    if entry.effective_at is not None and now >= entry.effective_at:
        return Status.ACTIVE
    return Status.OBJECTED if objections else Status.NOTIFIED


async def get_entry(session: AsyncSession, sub_id: str, *, lock: bool = False,
                    public: bool = False) -> Subprocessor:
    """The entry; 404 when there is none (or, for ``public``, when nobody was told)."""
    query = select(Subprocessor).where(Subprocessor.id == sub_id)
    entry = await session.scalar(query.with_for_update() if lock else query)
    if entry is None or (public and entry.lifecycle == Lifecycle.PROPOSED):
        raise NotFound(f"No sub-processor {sub_id!r}.", code="subprocessor_not_found")
    return entry


async def list_entries(session: AsyncSession, *, public: bool = False) -> list[Subprocessor]:
    query = select(Subprocessor).order_by(Subprocessor.created_at, Subprocessor.id)
    if public:
        query = query.where(Subprocessor.lifecycle != Lifecycle.PROPOSED)
    return list((await session.scalars(query)).all())


async def objection_counts(session: AsyncSession) -> dict[str, tuple[int, int, int]]:
    """Per entry: (clients told, objections still open, objections in all)."""
    objected = SubprocessorNotice.objected_at.is_not(None)
    rows = await session.execute(select(
        SubprocessorNotice.subprocessor_id, func.count(),
        func.count().filter(objected, SubprocessorNotice.resolution.is_(None)),
        func.count().filter(objected)).group_by(SubprocessorNotice.subprocessor_id))
    return {sub_id: (told, open_, all_) for sub_id, told, open_, all_ in rows}


async def kept_off_counts(session: AsyncSession) -> dict[str, int]:
    """Per entry: the clients an objection keeps off it (open, upheld or terminating)."""
    rows = await session.execute(
        select(SubprocessorNotice.subprocessor_id, func.count())
        .where(SubprocessorNotice.objected_at.is_not(None),
               func.coalesce(SubprocessorNotice.resolution, "") != "withdrawn")
        .group_by(SubprocessorNotice.subprocessor_id))
    return dict(rows.all())


def do_create(session: AsyncSession, *, body: CreateSubprocessor, actor: Actor,
              now: datetime) -> Subprocessor:
    entry = Subprocessor(id=new_id("sub"), lifecycle=Lifecycle.PROPOSED.value,
                         created_at=now, created_by=actor_label(actor), updated_at=now)
    _apply(entry, body)
    session.add(entry)
    return entry


async def do_change(session: AsyncSession, *, sub_id: str, body: SubprocessorFields,
                    now: datetime) -> Subprocessor:
    """Change an entry nobody was told of; a told one is what clients agreed to."""
    entry = await get_entry(session, sub_id, lock=True)
    if entry.lifecycle != Lifecycle.PROPOSED:
        raise Conflict(f"{sub_id} was notified to clients and cannot change: record the "
                       "change as a new entry, which clients are told of in turn.",
                       code="subprocessor_notified")
    _apply(entry, body)
    entry.updated_at = now
    return entry


async def do_notify(session: AsyncSession, *, sub_id: str, effective_at: datetime,
                    now: datetime) -> Subprocessor:
    """Tell every client (by the job), in effect from ``effective_at``."""
    if effective_at < now + NOTICE_PERIOD:
        raise InvalidRequest(
            f"effective_at must be at least 30 days after the notice, so not before "
            f"{(now + NOTICE_PERIOD).isoformat(timespec='seconds')}: clients have thirty "
            "days to object.", code="notice_too_short", parameter="effective_at")
    entry = await get_entry(session, sub_id, lock=True)
    if entry.lifecycle != Lifecycle.PROPOSED:
        raise Conflict(f"{sub_id} is {entry.lifecycle}, not proposed: clients are told once.",
                       code="subprocessor_not_proposed")
    entry.lifecycle, entry.notified_at, entry.effective_at = (Lifecycle.NOTIFIED.value, now,
                                                              effective_at)
    entry.updated_at = now
    await enqueue_rows(session, [job_row(tenant=SYSTEM, kind=NOTIFY_JOB, ref_id=entry.id,
                                         now=now)])
    return entry


async def do_retire(session: AsyncSession, *, sub_id: str, now: datetime) -> Subprocessor:
    """No longer used: routing refuses its connectors at once."""
    entry = await get_entry(session, sub_id, lock=True)
    if entry.lifecycle == Lifecycle.RETIRED:
        raise Conflict(f"{sub_id} is retired already.", code="subprocessor_retired")
    entry.lifecycle, entry.retired_at, entry.updated_at = Lifecycle.RETIRED.value, now, now
    return entry


def _apply(entry: Subprocessor, body: SubprocessorFields) -> None:
    if body.countries is not None:
        entry.countries = _countries(body.countries)
    if body.data_categories is not None:
        entry.data_categories = _categories(body.data_categories)
    for name in ("legal_name", "purpose", "security_summary"):
        value = getattr(body, name)
        if value is not None:
            setattr(entry, name, _text(name, value))
    if body.transfer_mechanism is not None:
        entry.transfer_mechanism = body.transfer_mechanism


def _countries(raw: Sequence[str]) -> list[str]:
    unknown = [code for code in raw if code not in COUNTRIES]
    if unknown:
        raise InvalidRequest(f"Not ISO 3166-1 country codes: {', '.join(unknown)}.",
                             code="unknown_country", parameter="countries")
    return sorted(set(raw))


def _categories(raw: Sequence[str]) -> list[str]:
    wrong = [c for c in raw if c not in CATEGORIES or not c.startswith("user.")]
    if wrong:
        known = ", ".join(sorted(c for c in CATEGORIES if c.startswith("user.")))
        raise InvalidRequest(f"Not personal data categories: {', '.join(wrong)}; the "
                             f"categories are {known}.", code="unknown_data_category",
                             parameter="data_categories")
    return sorted(set(raw))


def _text(name: str, raw: str) -> str:
    text = raw.strip()
    if not text or any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise InvalidRequest(f"{name} must be text, without control characters.",
                             code="invalid_text", parameter=name)
    return text


async def root_of(session: AsyncSession, tenant: str) -> str:
    """The client at the top of ``tenant``'s tree: the controller, whose notice counts."""
    current = tenant
    while (parent := await session.scalar(
            select(Account.parent_id).where(Account.id == current))) is not None:
        current = parent
    return current


async def for_account(session: AsyncSession, tenant: str,
                      now: datetime) -> list[tuple[Subprocessor, str]]:
    """The entries told to clients and not retired, each with what it is to ``tenant``
    now: ``in_effect``, ``upcoming`` (its notice period runs) or ``kept_off`` (its
    client objected). A session that sees the client's notice (``SYSTEM``)."""
    root = await root_of(session, tenant)
    notices = {n.subprocessor_id: n for n in await session.scalars(
        select(SubprocessorNotice).where(SubprocessorNotice.tenant_id == root))}
    found = []
    for entry in await list_entries(session, public=True):
        if entry.lifecycle == Lifecycle.RETIRED or entry.effective_at is None:
            continue
        notice = notices.get(entry.id)
        if notice is not None and notice.objected_at is not None \
                and notice.resolution != Resolution.WITHDRAWN:
            found.append((entry, "kept_off"))
            continue
        starts = notice.effective_at if notice is not None else entry.effective_at
        found.append((entry, "in_effect" if now >= starts else "upcoming"))
    return found
