"""HTTP endpoints of terminated accounts' purges (``/v1/operator/privacy/purges``): when
the data goes, the client's request to purge sooner, the deletion certificate."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tidings.core.services import Services
from tidings.operators.deps import CurrentOperator
from tidings.privacy.models import AccountPurge
from tidings.privacy.schemas import PurgeOut
from tidings.privacy.termination import certificate_pdf, request_purge
from tidings.storage.db import SYSTEM
from tidings.web.deps import PROBLEMS_OF_OPERATOR_ROUTES, RuntimeDep
from tidings.web.errors import Conflict, NotFound, problem_responses

operator_router = APIRouter(prefix="/v1/operator/privacy", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)


def purge_out(purge: AccountPurge) -> PurgeOut:
    return PurgeOut(account_id=purge.tenant_id, terminated_at=purge.terminated_at,
                    purge_due_at=purge.purge_due_at, requested_at=purge.requested_at,
                    purged_at=purge.purged_at, certificate_id=purge.certificate_id)


async def purge_of(rt: Services, *, account_id: str) -> AccountPurge:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        purge = await session.get(AccountPurge, account_id)
    if purge is None:
        raise NotFound("That account is not terminated: it has no purge.",
                       code="purge_not_found")
    return purge


@operator_router.get("/purges/{account_id}", response_model=PurgeOut,
                     summary="A terminated account's purge", operation_id="get_purge")
async def get_purge_endpoint(account_id: str, rt: RuntimeDep,
                             operator: CurrentOperator) -> PurgeOut:
    return purge_out(await purge_of(rt, account_id=account_id))


@operator_router.post("/purges/{account_id}", response_model=PurgeOut,
                      summary="Purge a terminated account now, as its client asked",
                      operation_id="request_purge", responses=problem_responses(404, 409))
async def request_purge_endpoint(account_id: str, rt: RuntimeDep,
                                 operator: CurrentOperator) -> PurgeOut:
    """The account and those below it lose every row and key now instead of six months
    after termination; the deletion certificate is issued and mailed to its owners."""
    return purge_out(await request_purge(rt, tenant=account_id, actor=operator.actor))


@operator_router.get("/purges/{account_id}/certificate", summary="The deletion certificate",
                     operation_id="get_deletion_certificate", responses={
                         200: {"content": {"application/json": {}, "application/pdf": {}},
                               "description": "JSON, or PDF with Accept: application/pdf."},
                         **problem_responses(404, 409)})
async def certificate_endpoint(account_id: str, request: Request, rt: RuntimeDep,
                               operator: CurrentOperator) -> Response:
    purge = await purge_of(rt, account_id=account_id)
    if purge.certificate is None:
        raise Conflict(f"The account is not purged yet (due "
                       f"{purge.purge_due_at.date().isoformat()}).", code="not_purged_yet")
    if "application/pdf" in request.headers.get("accept", ""):
        return Response(certificate_pdf(purge.certificate), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename='
                                 f'"{purge.certificate_id}.pdf"'})
    return JSONResponse(purge.certificate)
