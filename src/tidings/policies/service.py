"""The rules of policy versions: publishing one (checked, stored whole with its hash,
and a ``policies.notify`` job in the same transaction), a client's answer (an
objection before the deadline, or an explicit acceptance), the operator's resolution
of an objection, and the reading of them all.

Publishing, the operator's reads and the resolution take a session opened as
``SYSTEM``; a client's reads and answers one opened for its own account (the notice is
under the tenant policy). Nothing here commits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from tidings.accounts.models import Account
from tidings.audit.service import Actor, actor_label, audit_row, record
from tidings.core.ids import new_id
from tidings.jobs.outbox import Job, enqueue_rows, job_row
from tidings.policies.models import (
    OBJECTION_REASON_FIELD,
    RESOLUTION_NOTE_FIELD,
    Answer,
    Outcome,
    PolicyNotice,
    PolicyVersion,
)
from tidings.policies.rules import (
    LONGEST_NOTICE,
    State,
    earliest_effective_at,
    in_force_at,
    objection_deadline,
    objections_open,
    state_of,
)
from tidings.policies.schemas import PublishPolicy
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, InvalidRequest, NotFound

__all__ = ["NOTIFY_JOB", "Announced", "Counts", "announced", "counts_of", "do_accept",
           "do_object", "do_publish", "do_resolve", "get_notice", "get_version",
           "in_force_by_kind", "list_versions", "notice_of_account", "notices_of_tenant",
           "notices_of_version", "notifying", "versions_of_kind"]

NOTIFY_JOB = "policies.notify"
POLICY_ID = re.compile(r"pol_[0-9a-z]{26}")
ACCOUNT_ID_MAX = 40


# --------------------------------------------------------------------------- reading


async def get_version(session: AsyncSession, version_id: str) -> PolicyVersion:
    """The version; ``NotFound`` (``policy_not_found``) for any other id."""
    found = None
    if POLICY_ID.fullmatch(version_id):
        found = await session.get(PolicyVersion, version_id)
    if found is None:
        raise NotFound(f"No policy version {version_id[:60]!r}.", code="policy_not_found")
    return found


async def list_versions(session: AsyncSession, *, kind: str | None = None
                        ) -> list[PolicyVersion]:
    """The newest published first, without their texts (``text`` is not loaded)."""
    query = select(PolicyVersion).options(defer(PolicyVersion.text, raiseload=True))
    if kind is not None:
        query = query.where(PolicyVersion.kind == kind)
    return list((await session.scalars(query.order_by(PolicyVersion.published_at.desc(),
                                                      PolicyVersion.id.desc()))).all())


@dataclass(frozen=True)
class Announced:
    """A version not in effect yet, as the log-in page names it."""

    kind: str
    version: str
    title: str
    effective_at: datetime


async def announced(session: AsyncSession, now: datetime) -> list[Announced]:
    """Every version not in effect yet, the soonest first."""
    rows = (await session.execute(
        select(PolicyVersion.kind, PolicyVersion.version, PolicyVersion.title,
               PolicyVersion.effective_at).where(PolicyVersion.effective_at > now)
        .order_by(PolicyVersion.effective_at))).all()
    return [Announced(*row) for row in rows]


async def versions_of_kind(session: AsyncSession, kind: str) -> list[PolicyVersion]:
    """A kind's versions, the first to take effect first."""
    return list((await session.scalars(select(PolicyVersion).where(
        PolicyVersion.kind == kind).order_by(PolicyVersion.effective_at))).all())


async def in_force_by_kind(session: AsyncSession, now: datetime) -> dict[str, datetime | None]:
    """When each kind's version in force took effect (None: none in force yet)."""
    rows = (await session.execute(select(PolicyVersion.kind,
                                         PolicyVersion.effective_at))).all()
    by_kind: dict[str, list[datetime]] = {}
    for kind, effective in rows:
        by_kind.setdefault(kind, []).append(effective)
    return {kind: in_force_at(effective, now) for kind, effective in by_kind.items()}


async def get_notice(session: AsyncSession, *, tenant: str, version_id: str,
                     lock: bool = False) -> tuple[PolicyNotice, PolicyVersion]:
    """The account's notice of the version; ``NotFound`` (``policy_not_found``) when it
    was not told of it, exactly as for a version that does not exist."""
    version = await get_version(session, version_id)
    query = select(PolicyNotice).where(PolicyNotice.version_id == version.id,
                                       PolicyNotice.tenant_id == tenant)
    if lock:
        query = query.with_for_update()
    notice = await session.scalar(query)
    if notice is None:
        raise NotFound(f"No policy version {version_id[:60]!r}.", code="policy_not_found")
    return notice, version


async def notice_of_account(session: AsyncSession, *, version_id: str, account_id: str,
                            lock: bool = False) -> PolicyNotice:
    """The notice of the version to an account, for the operator (a ``SYSTEM``
    session); ``NotFound`` for a version that is none or an account not told of it."""
    version = await get_version(session, version_id)
    query = select(PolicyNotice).where(PolicyNotice.version_id == version.id,
                                       PolicyNotice.tenant_id == account_id[:ACCOUNT_ID_MAX])
    if lock:
        query = query.with_for_update()
    notice = await session.scalar(query)
    if notice is None:
        raise NotFound(f"The account {account_id[:60]!r} was not told of this version.",
                       code="policy_notice_not_found")
    return notice


async def notices_of_tenant(session: AsyncSession, tenant: str, *, kind: str | None = None
                            ) -> list[tuple[PolicyNotice, PolicyVersion]]:
    """The account's notices, the newest version first."""
    query = (select(PolicyNotice, PolicyVersion)
             .join(PolicyVersion, PolicyVersion.id == PolicyNotice.version_id)
             .where(PolicyNotice.tenant_id == tenant))
    if kind is not None:
        query = query.where(PolicyVersion.kind == kind)
    rows = (await session.execute(query.order_by(PolicyVersion.published_at.desc(),
                                                 PolicyVersion.id.desc()))).all()
    return [(notice, version) for notice, version in rows]


async def notices_of_version(session: AsyncSession, version_id: str
                             ) -> list[tuple[PolicyNotice, str]]:
    """Every account's notice of the version with the account's name, objections first."""
    rows = (await session.execute(
        select(PolicyNotice, Account.name).join(Account, Account.id == PolicyNotice.tenant_id)
        .where(PolicyNotice.version_id == version_id)
        .order_by(PolicyNotice.notified_at, PolicyNotice.tenant_id))).all()
    found = [(notice, name) for notice, name in rows]
    return sorted(found, key=lambda pair: pair[0].answer != Answer.OBJECTED)


@dataclass
class Counts:
    notified: int = 0
    undeliverable: int = 0
    pending: int = 0
    objected: int = 0
    accepted: int = 0
    deemed_accepted: int = 0
    open_objections: int = 0


async def counts_of(session: AsyncSession, versions: Sequence[PolicyVersion],
                    now: datetime) -> dict[str, Counts]:
    """Each version's notices counted by where they stand now (one query)."""
    counts = {version.id: Counts() for version in versions}
    if not versions:
        return counts
    deadlines = {version.id: version.objection_deadline for version in versions}
    rows = (await session.execute(
        select(PolicyNotice.version_id, PolicyNotice.answer,
               PolicyNotice.undeliverable.is_not(None), PolicyNotice.resolution.is_(None),
               func.count())
        .where(PolicyNotice.version_id.in_(list(counts)))
        .group_by(PolicyNotice.version_id, PolicyNotice.answer,
                  PolicyNotice.undeliverable.is_not(None),
                  PolicyNotice.resolution.is_(None)))).all()
    for version_id, answer, undeliverable, unresolved, number in rows:
        count = counts[version_id]
        count.notified += number
        count.undeliverable += number if undeliverable else 0
        state = state_of(answer, deadlines[version_id], now)
        setattr(count, state.value, getattr(count, state.value) + number)
        if state is State.OBJECTED and unresolved:
            count.open_objections += number
    return counts


async def notifying(session: AsyncSession, version_ids: Sequence[str]) -> set[str]:
    """The versions whose notifying job is still waiting or running."""
    if not version_ids:
        return set()
    return set((await session.scalars(select(Job.ref_id).where(
        Job.kind == NOTIFY_JOB, Job.ref_id.in_(list(version_ids))))).all())


# --------------------------------------------------------------------------- publishing


async def do_publish(session: AsyncSession, *, body: PublishPolicy, actor: Actor,
                     now: datetime) -> PolicyVersion:
    """Store a new version and, in the same transaction, the job that tells every
    account of it. ``InvalidRequest`` for a text that is not one, an effective date too
    soon (``notice_too_short``) or too far; ``Conflict`` for a version label its kind
    has already, or an effective date not after the kind's earlier versions'. Nothing is
    written then. The caller wakes the job after the commit."""
    title = _text("title", body.title, multiline=False)
    summary = _text("summary", body.summary, multiline=True)
    text = _text("text", body.text.replace("\r\n", "\n"), multiline=True, strip=False)
    effective = _effective_at(body.effective_at, now)
    await _check_unused(session, body.kind, body.version, effective)
    version = PolicyVersion(
        id=new_id("pol"), kind=body.kind, version=body.version, title=title, summary=summary,
        text=text, sha256=_sha256(text), published_at=now, published_by=actor_label(actor),
        objection_deadline=objection_deadline(now), effective_at=effective)
    session.add(version)
    await enqueue_rows(session, [job_row(tenant=SYSTEM, kind=NOTIFY_JOB, ref_id=version.id,
                                         now=now, payload={"actor_type": actor.type,
                                                           "actor_id": actor.id})])
    try:
        await session.flush()
    except IntegrityError:  # published a moment ago by someone else
        raise _label_taken(body.kind, body.version) from None
    return version


def _effective_at(wanted: datetime | None, now: datetime) -> datetime:
    earliest = earliest_effective_at(now)
    if wanted is None:
        return earliest
    wanted = wanted.astimezone(UTC)
    if wanted < earliest:
        raise InvalidRequest(
            "effective_at is too soon: clients have one month from the notice to object, "
            "and the DPA promises thirty days' notice; the soonest is "
            f"{earliest:%Y-%m-%d %H:%M:%S} UTC.", code="notice_too_short", parameter="effective_at",
            earliest=earliest.isoformat())
    if wanted > now + LONGEST_NOTICE:
        raise InvalidRequest("effective_at is more than two years ahead.",
                             code="invalid_effective_at", parameter="effective_at")
    return wanted


async def _check_unused(session: AsyncSession, kind: str, label: str,
                        effective: datetime) -> None:
    taken = await session.scalar(select(PolicyVersion.id).where(
        PolicyVersion.kind == kind, PolicyVersion.version == label))
    if taken is not None:
        raise _label_taken(kind, label)
    latest = await session.scalar(select(func.max(PolicyVersion.effective_at)).where(
        PolicyVersion.kind == kind))
    if latest is not None and effective <= latest:
        raise Conflict(f"An earlier {kind} version takes effect at {latest:%Y-%m-%d %H:%M:%S} "
                       "UTC: a new one must take effect after it.",
                       code="effective_at_conflict", parameter="effective_at")


def _label_taken(kind: str, label: str) -> Conflict:
    return Conflict(f"The {kind} has a version {label!r} already; versions are never "
                    "changed: publish another label.", code="policy_version_exists",
                    parameter="version")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- answers


async def do_object(session: AsyncSession, keys: TenantKeys, *, tenant: str,
                    version_id: str, reason: str, actor: Actor, now: datetime
                    ) -> tuple[PolicyNotice, PolicyVersion]:
    """Record the account's objection, its reason under the account's key. ``Conflict``
    once it answered (``already_objected``, ``already_accepted``) or past the deadline
    (``objection_window_closed``)."""
    reason = _text("reason", reason, multiline=True)
    notice, version = await get_notice(session, tenant=tenant, version_id=version_id,
                                       lock=True)
    _check_unanswered(notice)
    if not objections_open(version.objection_deadline, now):
        raise Conflict(f"Objections to this version were taken until "
                       f"{version.objection_deadline:%Y-%m-%d %H:%M:%S} UTC; silence "
                       "since then is acceptance.", code="objection_window_closed")
    notice.answer, notice.answered_at = Answer.OBJECTED.value, now
    notice.answered_by = actor_label(actor)
    notice.objection_reason_enc = keys.encrypt(reason, field=OBJECTION_REASON_FIELD)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="policy.object",
                                     table="policy_notices", row_id=notice.id,
                                     fields=["answer", "objection_reason"], now=now)])
    await session.flush()
    return notice, version


async def do_accept(session: AsyncSession, *, tenant: str, version_id: str, actor: Actor,
                    now: datetime) -> tuple[PolicyNotice, PolicyVersion]:
    """Record the account's explicit acceptance. ``Conflict`` once it answered, or past
    the deadline (``already_deemed_accepted``: silence accepted it)."""
    notice, version = await get_notice(session, tenant=tenant, version_id=version_id,
                                       lock=True)
    _check_unanswered(notice)
    if not objections_open(version.objection_deadline, now):
        raise Conflict("The deadline has passed: the account accepted this version by not "
                       "objecting.", code="already_deemed_accepted")
    notice.answer, notice.answered_at = Answer.ACCEPTED.value, now
    notice.answered_by = actor_label(actor)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="policy.accept",
                                     table="policy_notices", row_id=notice.id,
                                     fields=["answer"], now=now)])
    await session.flush()
    return notice, version


def _check_unanswered(notice: PolicyNotice) -> None:
    if notice.answer == Answer.OBJECTED:
        raise Conflict("The account has objected to this version already.",
                       code="already_objected")
    if notice.answer == Answer.ACCEPTED:
        raise Conflict("The account has accepted this version already.",
                       code="already_accepted")


async def do_resolve(session: AsyncSession, keys: TenantKeys, *, version_id: str,
                     account_id: str, outcome: Outcome, note: str | None, actor: Actor,
                     now: datetime) -> PolicyNotice:
    """Close an account's objection with its outcome; the note under the account's key,
    the audit event on its trail. ``NotFound`` for an account not told of the version,
    ``Conflict`` when it did not object (``no_objection``) or the objection is resolved
    already (``objection_resolved``)."""
    cleaned = None if note is None else _text("note", note, multiline=True)
    notice = await notice_of_account(session, version_id=version_id, account_id=account_id,
                                     lock=True)
    if notice.answer != Answer.OBJECTED:
        raise Conflict("The account has not objected to this version: there is nothing to "
                       "resolve.", code="no_objection")
    if notice.resolution is not None:
        raise Conflict("This objection is resolved already.", code="objection_resolved")
    notice.resolution, notice.resolved_at = outcome.value, now
    notice.resolved_by = actor_label(actor)
    notice.resolution_note_enc = keys.encrypt_optional(cleaned, field=RESOLUTION_NOTE_FIELD)
    await record(session, [audit_row(tenant=notice.tenant_id, actor=actor,
                                     action="policy.resolve", table="policy_notices",
                                     row_id=notice.id, fields=["resolution",
                                                               "resolution_note"], now=now)])
    await session.flush()
    return notice


# --------------------------------------------------------------------------- checking


def _text(name: str, raw: str, *, multiline: bool, strip: bool = True) -> str:
    """Not blank, and no control characters (but line breaks and tabs where several
    lines are allowed)."""
    value = raw.strip() if strip else raw
    if not value.strip():
        raise InvalidRequest(f"{name} is empty.", code="invalid_text", parameter=name)
    allowed = "\n\r\t" if multiline else ""
    if any((ord(c) < 32 and c not in allowed) or c == "\x7f" for c in value):
        where = "" if multiline else " (one line)"
        raise InvalidRequest(f"{name} holds control characters{where}.",
                             code="invalid_text", parameter=name)
    return value
