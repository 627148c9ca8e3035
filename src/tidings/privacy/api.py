"""HTTP endpoints of data subject requests (``/v1/privacy``): requests and their
bundles, legal holds, restrictions, the portability import, the published schemas; and
the operator's forwarding of a request to the account it concerns (processor mode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.deps import MayManagePrivacy
from tidings.accounts.service import get_account
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.operators.deps import CurrentOperator
from tidings.privacy import bundles, portability
from tidings.privacy.holds import do_place_hold, do_release_hold, list_holds
from tidings.privacy.models import (
    BUNDLE_CONTENT_FIELD,
    LegalHold,
    PrivacyBundle,
    PrivacyRequest,
    SubjectRestriction,
)
from tidings.privacy.notices import queue_privacy_mail
from tidings.privacy.requests import (
    FULFIL_JOB,
    OPEN_STATUSES,
    RequestType,
    Subject,
    add_notice,
    do_complete,
    do_create_request,
    do_extend,
    do_reject,
    get_request,
    list_requests,
    note_of,
    parse_subject,
    subject_of,
)
from tidings.privacy.restrictions import do_lift, list_restrictions
from tidings.privacy.schemas import (
    CompleteRequest,
    CreateRequest,
    ExtendRequest,
    ForwardRequest,
    HoldOut,
    ImportOut,
    PlaceHold,
    RejectRequest,
    RequestOut,
    RestrictionOut,
    StatusName,
    SubjectIn,
)
from tidings.privacy.subjects import subject_index
from tidings.storage.vault import TenantKeys
from tidings.web.deps import (
    PROBLEMS_OF_API_KEY_ROUTES,
    PROBLEMS_OF_OPERATOR_ROUTES,
    KnownQueryOnly,
    RuntimeDep,
    public,
)
from tidings.web.errors import Conflict, NotFound, TidingsError, problem_responses

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=PROBLEMS_OF_API_KEY_ROUTES)
operator_router = APIRouter(prefix="/v1/operator/privacy", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)
schemas_router = APIRouter(prefix="/v1/privacy/schemas", tags=["privacy"])


def request_out(keys: TenantKeys, row: PrivacyRequest, now: Any) -> RequestOut:
    address = subject_of(keys, row)
    return RequestOut(
        id=row.id, type=row.type, status=row.status,
        subject=None if address is None else {row.subject_kind: address},
        note=note_of(keys, row), source=row.source, received_at=row.received_at,
        due_at=row.due_at, overdue=row.status in OPEN_STATUSES and now > row.due_at,
        extended_at=row.extended_at, extension_reason=row.extension_reason,
        completed_at=row.completed_at, outcome=row.outcome)


def _subject(body: SubjectIn | None) -> Subject | None:
    return None if body is None else parse_subject(number=body.number, email=body.email)


async def create_request(rt: Services, *, tenant: str, body: CreateRequest, source: str,
                         actor: Actor) -> RequestOut:
    """Record a request for ``tenant`` (the API, the portal, the CLI, the operator)."""
    subject = _subject(body.subject)
    assert subject is not None
    rectify_to = _subject(body.rectify_to)
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant) as session:
        row = await do_create_request(session, keys=keys, tenant=tenant,
                                      type_=RequestType(body.type), subject=subject,
                                      note=body.note, rectify_to=rectify_to, source=source,
                                      actor=actor, now=rt.clock.now())
        if source == "operator":
            await queue_privacy_mail(
                rt, session, account_id=tenant, now=rt.clock.now(), actor=actor,
                subject=f"A {body.type} request was forwarded to you",
                body=(f"A person asked the platform's operator for {body.type} of their "
                      f"data, which your account controls. The request is {row.id}, due "
                      f"{row.due_at.date().isoformat()}; see it in the portal's Privacy "
                      "page or at GET /v1/privacy/requests/{id}.\n"))
        out = request_out(keys, row, rt.clock.now())
    rt.wakeups.notify(FULFIL_JOB)
    return out


@router.post("/requests", status_code=201, response_model=RequestOut,
             summary="Record a data subject request", operation_id="create_privacy_request",
             responses=problem_responses(409, 413))
async def create_endpoint(body: CreateRequest, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> RequestOut:
    """Answered the same whether or not the account holds anything of the person; an
    access or portability request then has its bundle, an erasure, restriction or
    rectification is carried out, an objection waits for your decision."""
    return await create_request(rt, tenant=principal.tenant, body=body, source="api",
                                actor=principal.actor)


@router.get("/requests", response_model=list[RequestOut], summary="Data subject requests",
            operation_id="list_privacy_requests", dependencies=[KnownQueryOnly])
async def list_endpoint(rt: RuntimeDep, principal: MayManagePrivacy,
                        status: StatusName | None = None,
                        open: bool = False) -> list[RequestOut]:
    return await fetch_requests(rt, tenant=principal.tenant, status=status, open_only=open)


async def fetch_requests(rt: Services, *, tenant: str, status: str | None = None,
                         open_only: bool = False) -> list[RequestOut]:
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        rows = await list_requests(session, tenant=tenant, status=status, open_only=open_only)
    now = rt.clock.now()
    return [request_out(keys, row, now) for row in rows]


@router.get("/requests/{request_id}", response_model=RequestOut,
            summary="A data subject request", operation_id="get_privacy_request")
async def get_endpoint(request_id: str, rt: RuntimeDep,
                       principal: MayManagePrivacy) -> RequestOut:
    return await fetch_request(rt, tenant=principal.tenant, request_id=request_id)


async def fetch_request(rt: Services, *, tenant: str, request_id: str) -> RequestOut:
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        row = await get_request(session, tenant=tenant, request_id=request_id)
    return request_out(keys, row, rt.clock.now())


@router.post("/requests/{request_id}/extend", response_model=RequestOut,
             summary="Extend a request's deadline", operation_id="extend_privacy_request",
             responses=problem_responses(409))
async def extend_endpoint(request_id: str, body: ExtendRequest, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> RequestOut:
    return await extend_request(rt, tenant=principal.tenant, request_id=request_id,
                                body=body, actor=principal.actor)


async def extend_request(rt: Services, *, tenant: str, request_id: str, body: ExtendRequest,
                         actor: Actor) -> RequestOut:
    return await _change(rt, tenant, lambda session, now: do_extend(
        session, tenant=tenant, request_id=request_id, months=body.months,
        reason=body.reason, actor=actor, now=now))


async def _change(rt: Services, tenant: str, change: Callable[
        [AsyncSession, datetime], Awaitable[PrivacyRequest]]) -> RequestOut:
    """Run a service change of one request in a transaction; the request as it is then."""
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant) as session:
        row = await change(session, rt.clock.now())
        return request_out(keys, row, rt.clock.now())


@router.post("/requests/{request_id}/complete", response_model=RequestOut,
             summary="Close a request you decided", operation_id="complete_privacy_request",
             responses=problem_responses(409))
async def complete_endpoint(request_id: str, body: CompleteRequest, rt: RuntimeDep,
                            principal: MayManagePrivacy) -> RequestOut:
    return await _change(rt, principal.tenant, lambda session, now: do_complete(
        session, tenant=principal.tenant, request_id=request_id, note=body.note,
        actor=principal.actor, now=now))


@router.post("/requests/{request_id}/reject", response_model=RequestOut,
             summary="Refuse a request", operation_id="reject_privacy_request",
             responses=problem_responses(409))
async def reject_endpoint(request_id: str, body: RejectRequest, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> RequestOut:
    return await reject_request(rt, tenant=principal.tenant, request_id=request_id,
                                body=body, actor=principal.actor)


async def reject_request(rt: Services, *, tenant: str, request_id: str, body: RejectRequest,
                         actor: Actor) -> RequestOut:
    return await _change(rt, tenant, lambda session, now: do_reject(
        session, tenant=tenant, request_id=request_id, reason=body.reason, actor=actor,
        now=now))


async def load_bundle(rt: Services, *, tenant: str, request_id: str) -> dict[str, Any]:
    """An access or portability request's bundle, while it is kept."""
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        row = await get_request(session, tenant=tenant, request_id=request_id)
        if row.type not in (RequestType.ACCESS, RequestType.PORTABILITY):
            raise NotFound(f"A {row.type} request has no bundle.", code="bundle_not_found")
        bundle = await session.scalar(select(PrivacyBundle).where(
            PrivacyBundle.tenant_id == tenant, PrivacyBundle.request_id == row.id))
    if bundle is None and row.status in OPEN_STATUSES:
        raise Conflict("The bundle is being prepared; try again shortly.",
                       code="bundle_not_ready")
    if bundle is None or bundle.expires_at <= rt.clock.now():
        raise TidingsError("The bundle was kept for seven days and is deleted; record a "
                           "new request for a new one.", code="bundle_expired", status=410)
    content: dict[str, Any] = orjson.loads(keys.decrypt(bundle.content_enc,
                                                        field=BUNDLE_CONTENT_FIELD))
    return content


@router.get("/requests/{request_id}/bundle", summary="Download a request's bundle",
            operation_id="get_privacy_bundle", responses={
                200: {"content": {"application/json": {}, "text/html": {}},
                      "description": "The bundle: JSON, or HTML with Accept: text/html."},
                **problem_responses(409, 410)})
async def bundle_endpoint(request_id: str, request: Request, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> Response:
    content = await load_bundle(rt, tenant=principal.tenant, request_id=request_id)
    headers = {"Cache-Control": "no-store",
               "Content-Disposition": f'attachment; filename="{request_id}.json"'}
    if "text/html" in request.headers.get("accept", ""):
        headers["Content-Disposition"] = f'attachment; filename="{request_id}.html"'
        return HTMLResponse(bundles.render_html(content), headers=headers)
    return JSONResponse(content, headers=headers)


@router.post("/imports", status_code=201, response_model=ImportOut,
             summary="Import a portability bundle", operation_id="import_privacy_bundle",
             responses=problem_responses(413))
async def import_endpoint(body: dict[str, Any], rt: RuntimeDep,
                          principal: MayManagePrivacy) -> ImportOut:
    """A person's portability bundle from this or another Tidings, as their history in
    this account; nothing is sent."""
    imported = await portability.import_bundle(rt, tenant=principal.tenant, bundle=body,
                                               actor=principal.actor)
    return ImportOut(messages=imported.total)


# --- legal holds and restrictions ------------------------------------------------------

@router.post("/holds", status_code=201, response_model=HoldOut, summary="Place a legal hold",
             operation_id="place_legal_hold", responses=problem_responses(409))
async def place_hold_endpoint(body: PlaceHold, rt: RuntimeDep,
                              principal: MayManagePrivacy) -> HoldOut:
    return await place_hold(rt, tenant=principal.tenant, body=body, actor=principal.actor)


def hold_out(hold: LegalHold) -> HoldOut:
    return HoldOut(id=hold.id, basis=hold.basis, created_at=hold.created_at,
                   released_at=hold.released_at)


async def place_hold(rt: Services, *, tenant: str, body: PlaceHold, actor: Actor) -> HoldOut:
    subject = _subject(body.subject)
    assert subject is not None
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant) as session:
        return hold_out(await do_place_hold(
            session, tenant=tenant, index=subject_index(keys, subject.address),
            basis=body.basis, actor=actor, now=rt.clock.now()))


@router.get("/holds", response_model=list[HoldOut], summary="Legal holds",
            operation_id="list_legal_holds", dependencies=[KnownQueryOnly])
async def list_holds_endpoint(rt: RuntimeDep, principal: MayManagePrivacy) -> list[HoldOut]:
    return await fetch_holds(rt, tenant=principal.tenant)


async def fetch_holds(rt: Services, *, tenant: str) -> list[HoldOut]:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        return [hold_out(h) for h in await list_holds(session, tenant=tenant)]


@router.post("/holds/{hold_id}/release", response_model=HoldOut,
             summary="Release a legal hold", operation_id="release_legal_hold",
             responses=problem_responses(409))
async def release_hold_endpoint(hold_id: str, rt: RuntimeDep,
                                principal: MayManagePrivacy) -> HoldOut:
    return await release_hold(rt, tenant=principal.tenant, hold_id=hold_id,
                              actor=principal.actor)


async def release_hold(rt: Services, *, tenant: str, hold_id: str, actor: Actor) -> HoldOut:
    async with rt.db.transaction(tenant=tenant) as session:
        return hold_out(await do_release_hold(session, tenant=tenant, hold_id=hold_id,
                                              actor=actor, now=rt.clock.now()))


@router.get("/restrictions", response_model=list[RestrictionOut],
            summary="Restricted people", operation_id="list_restrictions",
            dependencies=[KnownQueryOnly])
async def list_restrictions_endpoint(rt: RuntimeDep,
                                     principal: MayManagePrivacy) -> list[RestrictionOut]:
    return await fetch_restrictions(rt, tenant=principal.tenant)


def restriction_out(row: SubjectRestriction) -> RestrictionOut:
    return RestrictionOut(id=row.id, request_id=row.request_id, created_at=row.created_at,
                          lifted_at=row.lifted_at)


async def fetch_restrictions(rt: Services, *, tenant: str) -> list[RestrictionOut]:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        return [restriction_out(r) for r in await list_restrictions(session, tenant=tenant)]


async def lift_restriction(rt: Services, *, tenant: str, restriction_id: str,
                           actor: Actor) -> RestrictionOut:
    """The person is told first (Art. 18(3)): the notice is recorded and mailed to the
    account in the same transaction that lifts the restriction."""
    async with rt.db.transaction(tenant=tenant) as session:
        now = rt.clock.now()
        row = await do_lift(session, tenant=tenant, restriction_id=restriction_id,
                            actor=actor, now=now)
        if row.request_id is not None:
            request = await get_request(session, tenant=tenant, request_id=row.request_id,
                                        for_update=True)
            request.outcome = add_notice(request.outcome, "restriction_lifted", now)
        await queue_privacy_mail(
            rt, session, account_id=tenant, now=now, actor=actor,
            subject="A restriction of processing is lifted",
            body=(f"The restriction {row.id} is lifted: messages to the person are sent "
                  "again. Tell them, as Art. 18(3) GDPR requires.\n"))
        out = restriction_out(row)
    rt.restricted_subjects.invalidate(tenant)
    return out


@router.post("/restrictions/{restriction_id}/lift", response_model=RestrictionOut,
             summary="Lift a restriction", operation_id="lift_restriction",
             responses=problem_responses(409))
async def lift_endpoint(restriction_id: str, rt: RuntimeDep,
                        principal: MayManagePrivacy) -> RestrictionOut:
    return await lift_restriction(rt, tenant=principal.tenant, restriction_id=restriction_id,
                                  actor=principal.actor)


# --- published schemas and the operator's forwarding ------------------------------------

@schemas_router.get("/{name}", summary="A bundle's JSON Schema",
                    operation_id="get_privacy_schema", dependencies=[public],
                    responses=problem_responses(404))
async def schema_endpoint(name: str) -> JSONResponse:
    try:
        found = bundles.schema(name.removesuffix(".json"))
    except KeyError:
        raise NotFound("There is no such schema; there are access-v1.json and "
                       "portability-v1.json.", code="schema_not_found") from None
    return JSONResponse(found, media_type="application/schema+json")


@operator_router.post("/requests", status_code=201, response_model=RequestOut,
                      summary="Forward a request to the account that controls the data",
                      operation_id="forward_privacy_request",
                      responses=problem_responses(404, 409, 413))
async def forward_endpoint(body: ForwardRequest, rt: RuntimeDep,
                           operator: CurrentOperator) -> RequestOut:
    """Processor mode: a person wrote to the operator about data an account controls.
    The request is recorded in that account (audited as the operator's) and its
    people are mailed; the account answers it."""
    return await forward_request(rt, body, actor=operator.actor)


async def forward_request(rt: Services, body: ForwardRequest, *, actor: Actor) -> RequestOut:
    async with rt.db.transaction(tenant=body.account_id, write=False) as session:
        await get_account(session, account_id=body.account_id)
    plain = CreateRequest.model_validate(body.model_dump(exclude={"account_id"}))
    return await create_request(rt, tenant=body.account_id, body=plain, source="operator",
                                actor=actor)
