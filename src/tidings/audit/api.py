"""``GET /v1/audit-events``: the account's audit events, newest first, filtered.

An event names who acted, what they did, on which row and which fields changed, never
the values; the whole chain can be checked with ``tidings audit verify``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import Select, select

from tidings.accounts.deps import MayReadAudit
from tidings.audit.models import AuditEvent
from tidings.audit.verify import verify
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import InvalidRequest

router = APIRouter(prefix="/v1/audit-events", tags=["audit"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)


class AuditEventOut(BaseModel):
    id: int
    actor: str = Field(description="Who acted: user:usr_…, api_key:key_…, operator:…, "
                                   "system:tidings.")
    action: str
    table: str
    row_id: str
    fields: list[str] = Field(description="Names of the changed fields, never their values.")
    created_at: datetime
    request_id: str | None = Field(
        description="The API request that made the change: its X-Request-Id, the client's "
                    "or the one Tidings answered with. None for changes no request made "
                    "(the operator's CLI, SMPP, the platform's own work) and for events "
                    "recorded before request ids were.")
    sealed: bool = Field(description="Whether the event is in the hash chain yet.")


class AuditPage(BaseModel):
    data: list[AuditEventOut]
    next_cursor: str | None


@router.get("", response_model=AuditPage, summary="Audit events of the account, newest first",
            operation_id="list_audit_events", dependencies=[KnownQueryOnly])
async def list_endpoint(
    rt: RuntimeDep, principal: MayReadAudit,
    actor: Annotated[str | None, Query(max_length=140, description="type:id, or an id")] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[AwareDatetime | None, Query()] = None,
    until: Annotated[AwareDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> AuditPage:
    query = _filtered(select(AuditEvent).where(AuditEvent.tenant_id == principal.tenant),
                      actor, action, since, until, _cursor(cursor))
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        rows = list((await session.scalars(query.order_by(AuditEvent.id.desc())
                                           .limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(data=[_out(e) for e in rows],
                     next_cursor=str(rows[-1].id) if more and rows else None)


def _filtered(query: Select[AuditEvent], actor: str | None, action: str | None,
              since: datetime | None, until: datetime | None,
              before: int | None) -> Select[AuditEvent]:
    if actor is not None:
        kind, _, ident = actor.rpartition(":")
        query = query.where(AuditEvent.actor_id == ident)
        if kind:
            query = query.where(AuditEvent.actor_type == kind)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return query


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise InvalidRequest("The cursor is not one this list gave.", code="invalid_cursor",
                             parameter="cursor")
    return int(raw)


def _out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(id=event.id, actor=f"{event.actor_type}:{event.actor_id}",
                         action=event.action, table=event.table_name, row_id=event.row_id,
                         fields=list(event.fields), created_at=event.created_at,
                         request_id=event.request_id, sealed=event.seq is not None)


class ChainCheckOut(BaseModel):
    intact: bool = Field(description="No event of the chain is missing, changed or re-sealed, "
                                     "and it reaches its checkpoint.")
    sealed_events: int
    unsealed_events: int = Field(description="Not in the chain yet (sealed within seconds).")
    problems: list[str] = Field(description="The first break, if any.")


@router.post("/verify", response_model=ChainCheckOut,
             summary="Check the account's audit chain (reads only)",
             operation_id="verify_audit_chain")
async def verify_endpoint(rt: RuntimeDep, principal: MayReadAudit) -> ChainCheckOut:
    """What ``tidings audit verify --account`` checks, for the account itself."""
    report = await verify(rt.db, rt.audit_chain, tenant=principal.tenant)
    return ChainCheckOut(intact=report.ok, sealed_events=report.sealed_events,
                         unsealed_events=report.unsealed_events, problems=report.problems)
