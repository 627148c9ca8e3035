"""The operator's breach register over HTTP (``/v1/operator/breaches``), and the same
functions for the console's pages and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fastapi import APIRouter

from tidings.audit.service import Actor
from tidings.breaches.clock import due_at, due_in, is_overdue
from tidings.breaches.impact import estimate_impact
from tidings.breaches.models import Breach, BreachNotice, BreachStatus, BreachVersion
from tidings.breaches.schemas import (
    BreachAccountImpactOut,
    BreachDetail,
    BreachImpactOut,
    BreachNoticeOut,
    BreachOut,
    BreachScopeOut,
    BreachSourceCountOut,
    BreachVersionIn,
    BreachVersionOut,
    CloseBreach,
    CreateBreach,
    StatusName,
)
from tidings.breaches.service import (
    current_version_of,
    current_versions,
    do_append_version,
    do_close,
    do_create_breach,
    do_notify,
    get_breach,
    list_breaches,
    missing_fields,
    notices_of,
    scope_of,
    versions_of,
)
from tidings.core.services import Services
from tidings.mail.service import wake_sender
from tidings.operators.deps import CurrentOperator
from tidings.storage.db import SYSTEM
from tidings.web.deps import PROBLEMS_OF_OPERATOR_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import problem_responses

operator_router = APIRouter(prefix="/v1/operator/breaches", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)


# --------------------------------------------------------------------------- shapes


def version_out(row: BreachVersion) -> BreachVersionOut:
    return BreachVersionOut(
        version=row.version, nature=row.nature,
        nature_description=row.nature_description,
        categories_of_subjects=row.categories_of_subjects,
        approx_subjects=row.approx_subjects, approx_subjects_reason=row.approx_subjects_reason,
        categories_of_records=row.categories_of_records, approx_records=row.approx_records,
        likely_consequences=row.likely_consequences, measures_taken=row.measures_taken,
        contact=row.contact,
        scope=BreachScopeOut(tenants=row.scope_tenants, window_start=row.scope_window_start,
                       window_end=row.scope_window_end, categories=row.scope_categories),
        created_by=row.created_by, created_at=row.created_at)


def notice_out(row: BreachNotice) -> BreachNoticeOut:
    return BreachNoticeOut(id=row.id, version=row.version, tenant_id=row.tenant_id,
                     accounts=row.accounts, mail_id=row.mail_id, mail_ids=row.mail_ids,
                     undeliverable=row.undeliverable, subjects=row.subjects,
                     records=row.records, queued_at=row.queued_at)


def breach_out(breach: Breach, current: BreachVersion, now: datetime) -> BreachOut:
    running = breach.status == BreachStatus.OPEN
    return BreachOut(
        id=breach.id, status=breach.status,
        detected_at=breach.detected_at, aware_at=breach.aware_at,
        due_at=due_at(breach.aware_at),
        due_in=due_in(aware_at=breach.aware_at, running=running, now=now),
        overdue=is_overdue(aware_at=breach.aware_at, running=running, now=now),
        escalated_at=breach.escalated_at, overdue_at=breach.overdue_at,
        notified_at=breach.notified_at, notified_version=breach.notified_version,
        closed_at=breach.closed_at, closed_by=breach.closed_by,
        close_reason=breach.close_reason, created_at=breach.created_at,
        created_by=breach.created_by, current_version=breach.current_version,
        missing=missing_fields(current), current=version_out(current))


def breach_detail(breach: Breach, versions: Sequence[BreachVersion],
                  notices: Sequence[BreachNotice], now: datetime) -> BreachDetail:
    out = breach_out(breach, versions[-1], now)
    return BreachDetail(**out.model_dump(), versions=[version_out(v) for v in versions],
                        notices=[notice_out(n) for n in notices])


# --------------------------------------------------------------------------- shared


async def fetch_breaches(rt: Services, *, status: str | None = None,
                         overdue: bool | None = None) -> list[BreachOut]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = await list_breaches(session, status=status)
        current = await current_versions(session, rows)
    now = rt.clock.now()
    found = [breach_out(row, current[row.id], now) for row in rows]
    return found if overdue is None else [b for b in found if b.overdue == overdue]


async def fetch_breach(rt: Services, breach_id: str) -> BreachDetail:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        breach = await get_breach(session, breach_id)
        versions = await versions_of(session, breach.id)
        notices = await notices_of(session, breach.id)
    return breach_detail(breach, versions, notices, rt.clock.now())


async def create_breach(rt: Services, body: CreateBreach, *, actor: Actor) -> BreachDetail:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        breach = await do_create_breach(session, body=body, actor=actor, now=rt.clock.now())
    return await fetch_breach(rt, breach.id)


async def append_version(rt: Services, breach_id: str, body: BreachVersionIn, *,
                         actor: Actor) -> BreachDetail:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        breach = await do_append_version(session, breach_id=breach_id, body=body, actor=actor,
                                         now=rt.clock.now())
    return await fetch_breach(rt, breach.id)


async def estimate(rt: Services, breach_id: str) -> BreachImpactOut:
    """The impact of the current version's scope (BRE-3), counted now."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        breach = await get_breach(session, breach_id)
        version = await current_version_of(session, breach)
        scope = scope_of(version)
        lines = await estimate_impact(session, scope)
    return BreachImpactOut(
        breach_id=breach.id, version=version.version, window_start=scope.window_start,
        window_end=scope.window_end, categories=version.scope_categories,
        subjects=sum(line.subjects for line in lines),
        records=sum(line.records for line in lines),
        accounts=[BreachAccountImpactOut(
            tenant_id=line.tenant_id, controller_id=line.controller_id,
            subjects=line.subjects, records=line.records,
            sources={name: BreachSourceCountOut(subjects=c.subjects, records=c.records)
                     for name, c in line.sources.items()}) for line in lines])


async def notify(rt: Services, breach_id: str, *, actor: Actor) -> BreachDetail:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_notify(rt, session, breach_id=breach_id, actor=actor, now=rt.clock.now())
    wake_sender(rt)
    return await fetch_breach(rt, breach_id)


async def close(rt: Services, breach_id: str, body: CloseBreach, *,
                actor: Actor) -> BreachDetail:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_close(session, breach_id=breach_id, reason=body.reason, actor=actor,
                       now=rt.clock.now())
    return await fetch_breach(rt, breach_id)


# --------------------------------------------------------------------------- routes


@operator_router.post("", status_code=201, response_model=BreachDetail,
                      summary="Record a personal data breach", operation_id="create_breach")
async def create_endpoint(body: CreateBreach, rt: RuntimeDep,
                          operator: CurrentOperator) -> BreachDetail:
    """The first version may be incomplete; the 48 hours run from ``aware_at``."""
    return await create_breach(rt, body, actor=operator.actor)


@operator_router.get("", response_model=list[BreachOut], summary="The breach register",
                     operation_id="list_breaches", dependencies=[KnownQueryOnly])
async def list_endpoint(rt: RuntimeDep, operator: CurrentOperator,
                        status: StatusName | None = None,
                        overdue: bool | None = None) -> list[BreachOut]:
    """Open breaches first, the soonest due first, each with its clock."""
    return await fetch_breaches(rt, status=status, overdue=overdue)


@operator_router.get("/{breach_id}", response_model=BreachDetail,
                     summary="A breach: its versions and notices", operation_id="get_breach",
                     responses=problem_responses(404))
async def get_endpoint(breach_id: str, rt: RuntimeDep,
                       operator: CurrentOperator) -> BreachDetail:
    return await fetch_breach(rt, breach_id)


@operator_router.post("/{breach_id}/versions", status_code=201, response_model=BreachDetail,
                      summary="Append what is now known of a breach",
                      operation_id="append_breach_version",
                      responses=problem_responses(404, 409))
async def version_endpoint(breach_id: str, body: BreachVersionIn, rt: RuntimeDep,
                           operator: CurrentOperator) -> BreachDetail:
    """The fields given replace the current version's; the others are kept."""
    return await append_version(rt, breach_id, body, actor=operator.actor)


@operator_router.post("/{breach_id}/estimate", response_model=BreachImpactOut,
                      summary="Estimate a breach's impact per account",
                      operation_id="estimate_breach_impact", responses=problem_responses(404))
async def estimate_endpoint(breach_id: str, rt: RuntimeDep,
                            operator: CurrentOperator) -> BreachImpactOut:
    """People and records per account in the current scope's window and categories."""
    return await estimate(rt, breach_id)


@operator_router.post("/{breach_id}/notify", response_model=BreachDetail,
                      summary="Notify every affected client of a breach",
                      operation_id="notify_breach", responses=problem_responses(404, 409))
async def notify_endpoint(breach_id: str, rt: RuntimeDep,
                          operator: CurrentOperator) -> BreachDetail:
    """Refused (``breach_incomplete``, naming each missing field) until the current
    version holds every field of the notice; one notice per client, mailed to its
    owners, with the mail ids as proof."""
    return await notify(rt, breach_id, actor=operator.actor)


@operator_router.post("/{breach_id}/close", response_model=BreachDetail,
                      summary="Close a breach", operation_id="close_breach",
                      responses=problem_responses(404, 409))
async def close_endpoint(breach_id: str, body: CloseBreach, rt: RuntimeDep,
                         operator: CurrentOperator) -> BreachDetail:
    return await close(rt, breach_id, body, actor=operator.actor)
