"""``GET /v1/privacy/ropa``: the account's record of processing activities (ROPA-1), as
JSON, or as a PDF with ``Accept: application/pdf``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tidings.accounts.deps import MayManagePrivacy
from tidings.privacy.ropa import record_of_processing, ropa_pdf
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=PROBLEMS_OF_API_KEY_ROUTES)


@router.get("/ropa", summary="The account's record of processing activities",
            operation_id="get_ropa", dependencies=[KnownQueryOnly], responses={
                200: {"content": {"application/json": {}, "application/pdf": {}},
                      "description": "JSON, or PDF with Accept: application/pdf."}})
async def ropa_endpoint(request: Request, rt: RuntimeDep,
                        principal: MayManagePrivacy) -> Response:
    """Purposes, data subjects, personal data by category with where it is stored and
    how long it is kept, recipients, and the technical and organisational measures:
    made from the code's own declarations, with the account's retention filled in."""
    record = await record_of_processing(rt, tenant=principal.tenant, now=rt.clock.now())
    if "application/pdf" in request.headers.get("accept", ""):
        return Response(ropa_pdf(record), media_type="application/pdf", headers={
            "Content-Disposition": 'attachment; filename="record-of-processing.pdf"'})
    return JSONResponse(record)
