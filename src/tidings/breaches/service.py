"""The breach register's rules (BRE-1, BRE-2's notices): recording a breach, appending
what is learnt as versions, notifying each affected client, closing.

A breach is recorded with when it was detected and when the operator became aware of
it (the clock's start, ``clock.py``), and a first version, which may be incomplete:
what is known of a breach comes in phases. Each update appends a version holding the
whole record as it then stands; a version is never changed and a breach never deleted,
notified or not. Moving to ``notified`` needs every field of the notice (BRE-1): a
refusal names each missing one and changes nothing. Notifying mails each affected
client's owners (one notice per client, the controller) and records the mail ids as
proof; a version appended afterwards can be notified again.

The functions take a session opened as ``SYSTEM`` (the register is the platform's and
a notice reads every client's accounts); they may flush, never commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.audit.service import Actor, actor_label
from tidings.breaches.impact import AccountImpact, Scope, estimate_impact
from tidings.breaches.models import Breach, BreachNotice, BreachStatus, BreachVersion
from tidings.breaches.notices import client_notice
from tidings.breaches.schemas import BreachScopeIn, BreachVersionIn, CreateBreach
from tidings.core.data_categories import CATEGORIES
from tidings.core.ids import new_id
from tidings.mail.account_notices import queue_owner_notice
from tidings.mail.service import MailKind
from tidings.web.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from tidings.core.services import Services

__all__ = ["NO_ACTIVE_OWNER", "PERSONAL_CATEGORIES", "REQUIRED", "current_version_of",
           "do_append_version", "do_close", "do_create_breach", "do_notify", "get_breach",
           "list_breaches", "missing_fields", "notices_of", "scope_of", "versions_of"]

BREACH_ID = re.compile(r"brc_[0-9a-z]{26}")
NOTICE_ACTION = "breach.notify"  # the audit action of each notice's mail, on the client's trail
NO_ACTIVE_OWNER = "no_active_owner"
# The data categories a breach of personal data reaches: the user.* keys.
PERSONAL_CATEGORIES = tuple(sorted(c for c in CATEGORIES if c.startswith("user.")))
UNKNOWN = "unknown"
# Every field a notice needs (BRE-1), in the order a refusal names them; ``aware_at``
# is the breach's own and is required when it is recorded.
REQUIRED = ("nature", "nature_description", "categories_of_subjects", "approx_subjects",
            "approx_subjects_reason", "categories_of_records", "approx_records",
            "likely_consequences", "measures_taken", "contact", "scope.tenants",
            "scope.window_start", "scope.window_end", "scope.categories")
_TEXTS = {"nature_description": True, "likely_consequences": True, "measures_taken": True,
          "contact": True, "approx_subjects_reason": False}  # name: several lines allowed
_NUMBER = re.compile(r"[0-9]{1,13}")
_RANGE = re.compile(r"([0-9]{1,13}) *- *([0-9]{1,13})")


# --------------------------------------------------------------------------- reading


async def get_breach(session: AsyncSession, breach_id: str, *, lock: bool = False) -> Breach:
    """The breach; ``NotFound`` (``breach_not_found``) for any other id. ``lock``: its row
    locked for the transaction (PostgreSQL; SQLite's writers take turns anyway)."""
    if BREACH_ID.fullmatch(breach_id) is None:
        raise NotFound(f"No breach {breach_id[:60]!r}.", code="breach_not_found")
    query = select(Breach).where(Breach.id == breach_id)
    if lock:
        query = query.with_for_update()
    found = await session.scalar(query)
    if found is None:
        raise NotFound(f"No breach {breach_id!r}.", code="breach_not_found")
    return found


async def list_breaches(session: AsyncSession, *, status: str | None = None) -> list[Breach]:
    """Open ones first, the soonest due first; then the others, the newest first."""
    query = select(Breach)
    if status is not None:
        query = query.where(Breach.status == status)
    rows = list((await session.scalars(query)).all())
    return sorted(rows, key=lambda b: (b.status != BreachStatus.OPEN,
                                       b.aware_at.timestamp() if b.status == BreachStatus.OPEN
                                       else -b.created_at.timestamp(), b.id))


async def versions_of(session: AsyncSession, breach_id: str) -> list[BreachVersion]:
    return list((await session.scalars(select(BreachVersion).where(
        BreachVersion.breach_id == breach_id).order_by(BreachVersion.version))).all())


async def current_version_of(session: AsyncSession, breach: Breach) -> BreachVersion:
    found = await session.get(BreachVersion, (breach.id, breach.current_version))
    assert found is not None, breach.id  # written with the breach, never deleted
    return found


async def current_versions(session: AsyncSession,
                           breaches: Sequence[Breach]) -> dict[str, BreachVersion]:
    """The current version of each breach, by breach id (one query)."""
    wanted = {(b.id, b.current_version) for b in breaches}
    if not wanted:
        return {}
    rows = (await session.scalars(select(BreachVersion).where(
        BreachVersion.breach_id.in_([b.id for b in breaches])))).all()
    return {row.breach_id: row for row in rows if (row.breach_id, row.version) in wanted}


async def notices_of(session: AsyncSession, breach_id: str) -> list[BreachNotice]:
    return list((await session.scalars(select(BreachNotice).where(
        BreachNotice.breach_id == breach_id).order_by(BreachNotice.queued_at,
                                                      BreachNotice.id))).all())


def missing_fields(version: BreachVersion) -> list[str]:
    """What a notice still lacks (BRE-1), named as the API names the fields."""
    present = {
        "nature": version.nature is not None,
        "nature_description": bool(version.nature_description),
        "categories_of_subjects": bool(version.categories_of_subjects),
        "approx_subjects": version.approx_subjects is not None,
        "approx_subjects_reason": version.approx_subjects != UNKNOWN
        or bool(version.approx_subjects_reason),
        "categories_of_records": bool(version.categories_of_records),
        "approx_records": version.approx_records is not None,
        "likely_consequences": bool(version.likely_consequences),
        "measures_taken": bool(version.measures_taken),
        "contact": bool(version.contact),
        "scope.tenants": bool(version.scope_tenants),
        "scope.window_start": version.scope_window_start is not None,
        "scope.window_end": version.scope_window_end is not None,
        "scope.categories": bool(version.scope_categories),
    }
    return [name for name in REQUIRED if not present[name]]


def scope_of(version: BreachVersion) -> Scope:
    """The version's scope, to estimate from; ``InvalidRequest``
    (``breach_scope_incomplete``) naming what it lacks."""
    lacking = [name for name in missing_fields(version) if name.startswith("scope.")]
    if lacking or version.scope_window_start is None or version.scope_window_end is None:
        raise InvalidRequest("The scope is incomplete: " + ", ".join(lacking) + " missing.",
                             code="breach_scope_incomplete", missing=lacking)
    return Scope(tenants=tuple(version.scope_tenants),
                 window_start=version.scope_window_start,
                 window_end=version.scope_window_end,
                 categories=frozenset(version.scope_categories))


# --------------------------------------------------------------------------- writing


async def do_create_breach(session: AsyncSession, *, body: CreateBreach, actor: Actor,
                           now: datetime) -> Breach:
    """Record a breach and its first version. ``InvalidRequest`` for times out of order
    or in the future, or a field that is not valid; nothing is written then."""
    if body.aware_at < body.detected_at:
        raise InvalidRequest("aware_at is before detected_at: the operator cannot become "
                             "aware of a breach before it is detected.",
                             code="invalid_aware_at", parameter="aware_at")
    for name, value in (("detected_at", body.detected_at), ("aware_at", body.aware_at)):
        if value > now:
            raise InvalidRequest(f"{name} is in the future.", code=f"invalid_{name}",
                                 parameter=name)
    values = await _version_values(session, body, base=None)
    breach = Breach(id=new_id("brc"), status=BreachStatus.OPEN.value,
                    detected_at=body.detected_at, aware_at=body.aware_at, created_at=now,
                    created_by=actor_label(actor), current_version=1, updated_at=now)
    session.add(breach)
    session.add(BreachVersion(breach_id=breach.id, version=1, created_by=actor_label(actor),
                              created_at=now, **values))
    await session.flush()
    return breach


async def do_append_version(session: AsyncSession, *, breach_id: str, body: BreachVersionIn,
                            actor: Actor, now: datetime) -> Breach:
    """A new version: the current one with the fields ``body`` gives replaced.
    ``InvalidRequest`` (``breach_version_empty``) when it gives none; ``Conflict``
    (``breach_closed``) for a closed breach."""
    if not body.model_fields_set:
        raise InvalidRequest("The update changes nothing: give at least one field.",
                             code="breach_version_empty")
    breach = await get_breach(session, breach_id, lock=True)
    if breach.status == BreachStatus.CLOSED:
        raise Conflict(f"The breach {breach.id} is closed.", code="breach_closed")
    values = await _version_values(session, body,
                                   base=await current_version_of(session, breach))
    breach.current_version += 1
    breach.updated_at = now
    session.add(BreachVersion(breach_id=breach.id, version=breach.current_version,
                              created_by=actor_label(actor), created_at=now, **values))
    await session.flush()
    return breach


async def do_notify(rt: Services, session: AsyncSession, *, breach_id: str, actor: Actor,
                    now: datetime) -> list[BreachNotice]:
    """Notify the current version to every client the scope reaches: one notice per
    client (the account at the top of each tree the scope names or reaches into),
    mailed to each of its active owners, its mail ids recorded; the breach becomes
    ``notified``. ``InvalidRequest`` (``breach_incomplete``, with ``missing``) when a
    field is missing, ``Conflict`` when closed or this version is notified already:
    nothing changes then. The caller wakes the mail sender after the commit."""
    breach = await get_breach(session, breach_id, lock=True)
    if breach.status == BreachStatus.CLOSED:
        raise Conflict(f"The breach {breach.id} is closed.", code="breach_closed")
    if breach.notified_version == breach.current_version:
        raise Conflict(f"Version {breach.current_version} of {breach.id} is notified "
                       "already; append a version to notify what changed.",
                       code="breach_already_notified")
    version = await current_version_of(session, breach)
    missing = missing_fields(version)
    if missing:
        raise InvalidRequest("The breach cannot be notified until these are set: "
                             + ", ".join(missing) + ".", code="breach_incomplete",
                             missing=missing)
    impacts = await estimate_impact(session, scope_of(version))
    by_client: dict[str, list[AccountImpact]] = {}
    for line in impacts:
        by_client.setdefault(line.controller_id, []).append(line)
    notices = [await _notify_client(rt, session, breach, version, client, lines,
                                    actor=actor, now=now)
               for client, lines in by_client.items()]
    breach.status = BreachStatus.NOTIFIED.value
    breach.notified_at = breach.notified_at or now
    breach.notified_version = version.version
    breach.updated_at = now
    await session.flush()
    return notices


async def _notify_client(rt: Services, session: AsyncSession, breach: Breach,
                         version: BreachVersion, client: str, lines: list[AccountImpact],
                         *, actor: Actor, now: datetime) -> BreachNotice:
    account = await session.get(Account, client)
    assert account is not None  # the scope's accounts were found a moment ago
    subject, body = client_notice(breach, version, account_name=account.name,
                                  controller_id=client, lines=lines)
    mail_ids = await queue_owner_notice(rt, session, account_id=client, kind=MailKind.BREACH,
                                        subject=subject, body=body, actor=actor, now=now,
                                        audit_action=NOTICE_ACTION)
    notice = BreachNotice(
        id=new_id("bnt"), breach_id=breach.id, version=version.version, tenant_id=client,
        accounts=[line.tenant_id for line in lines],
        mail_id=mail_ids[0] if mail_ids else None, mail_ids=mail_ids,
        undeliverable=None if mail_ids else NO_ACTIVE_OWNER,
        subjects=sum(line.subjects for line in lines),
        records=sum(line.records for line in lines), queued_at=now,
        created_by=actor_label(actor))
    session.add(notice)
    return notice


async def do_close(session: AsyncSession, *, breach_id: str, reason: str, actor: Actor,
                   now: datetime) -> Breach:
    """Close a breach, notified or not, with the reason; it is kept like every other.
    ``Conflict`` (``breach_closed``) for one closed already."""
    reason = _text("reason", reason, multiline=False)
    breach = await get_breach(session, breach_id, lock=True)
    if breach.status == BreachStatus.CLOSED:
        raise Conflict(f"The breach {breach.id} is closed already.", code="breach_closed")
    breach.status = BreachStatus.CLOSED.value
    breach.closed_at, breach.closed_by, breach.close_reason = now, actor_label(actor), reason
    breach.updated_at = now
    await session.flush()
    return breach


# --------------------------------------------------------------------------- checking


async def _version_values(session: AsyncSession, body: BreachVersionIn,
                          base: BreachVersion | None) -> dict[str, Any]:
    """The columns of the new version: ``base``'s, with what ``body`` gives checked and
    put in their place."""
    values: dict[str, Any] = {
        "nature": None, "nature_description": None, "categories_of_subjects": [],
        "approx_subjects": None, "approx_subjects_reason": None, "categories_of_records": [],
        "approx_records": None, "likely_consequences": None, "measures_taken": None,
        "contact": None, "scope_tenants": [], "scope_window_start": None,
        "scope_window_end": None, "scope_categories": []}
    if base is not None:
        values = {name: getattr(base, name) for name in values}
    given = body.model_fields_set
    if "nature" in given:
        values["nature"] = body.nature
    for name, multiline in _TEXTS.items():
        if name in given:
            raw = getattr(body, name)
            values[name] = None if raw is None else _text(name, raw, multiline=multiline)
    if "categories_of_subjects" in given:
        values["categories_of_subjects"] = _labels(body.categories_of_subjects or [])
    if "categories_of_records" in given:
        values["categories_of_records"] = _categories("categories_of_records",
                                                      body.categories_of_records or [])
    if "approx_subjects" in given:
        values["approx_subjects"] = _approx("approx_subjects", body.approx_subjects,
                                            unknown_allowed=True)
    if "approx_records" in given:
        values["approx_records"] = _approx("approx_records", body.approx_records,
                                           unknown_allowed=False)
    if "scope" in given:
        values.update(await _scope(session, body.scope or BreachScopeIn()))
    return values


async def _scope(session: AsyncSession, scope: BreachScopeIn) -> dict[str, Any]:
    tenants = list(dict.fromkeys(t.strip() for t in scope.tenants))
    if tenants:
        known = set((await session.scalars(select(Account.id).where(
            Account.id.in_(tenants)))).all())
        unknown = [t for t in tenants if t not in known]
        if unknown:
            raise InvalidRequest(f"There is no account {unknown[0][:60]!r}.",
                                 code="unknown_account", parameter="scope.tenants")
    start, end = scope.window_start, scope.window_end
    if start is not None and end is not None and start >= end:
        raise InvalidRequest("The scope's window ends before it starts.",
                             code="invalid_window", parameter="scope.window_end")
    return {"scope_tenants": tenants, "scope_window_start": start, "scope_window_end": end,
            "scope_categories": _categories("scope.categories", scope.categories)}


def _text(name: str, raw: str, *, multiline: bool) -> str:
    value = raw.strip()
    if not value:
        raise InvalidRequest(f"{name} is empty.", code="invalid_text", parameter=name)
    allowed = "\n\r\t" if multiline else ""
    if any(ord(c) < 32 and c not in allowed for c in value) or "\x7f" in value:
        where = "" if multiline else " (one line)"
        raise InvalidRequest(f"{name} holds control characters{where}.",
                             code="invalid_text", parameter=name)
    return value


def _labels(raw: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(_text("categories_of_subjects", label, multiline=False)
                              for label in raw))


def _categories(name: str, raw: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(c.strip() for c in raw))
    for category in chosen:
        if category not in PERSONAL_CATEGORIES:
            raise InvalidRequest(f"{category[:60]!r} is not a category of personal data; the "
                                 f"categories are {', '.join(PERSONAL_CATEGORIES)}.",
                                 code="unknown_data_category", parameter=name)
    return chosen


def _approx(name: str, raw: int | str | None, *, unknown_allowed: bool) -> str | None:
    """A number ("250"), a range ("100-500"), or "unknown" where allowed."""
    if raw is None:
        return None
    if isinstance(raw, int):
        return str(raw)
    value = raw.strip().lower()
    if _NUMBER.fullmatch(value):
        return str(int(value))
    found = _RANGE.fullmatch(value)
    if found and int(found.group(1)) <= int(found.group(2)):
        return f"{int(found.group(1))}-{int(found.group(2))}"
    if value == UNKNOWN and unknown_allowed:
        return UNKNOWN
    also = ', or "unknown" with a reason' if unknown_allowed else ""
    raise InvalidRequest(f"{name} must be a number or a range such as 100-500{also}.",
                         code="invalid_approximation", parameter=name)
