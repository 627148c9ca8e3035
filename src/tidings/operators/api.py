"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from tidings.storage.db import SYSTEM
from tidings.web.deps import RuntimeDep, public
from tidings.web.errors import TidingsError, problem_responses

router = APIRouter(tags=["operations"], dependencies=[public])


@router.get("/healthz", summary="The process is up", operation_id="get_health")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers",
            operation_id="get_readiness", responses=problem_responses(503))
async def readyz(rt: RuntimeDep) -> dict[str, str]:
    try:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise TidingsError("The database does not answer.", code="not_ready",
                           status=503) from exc
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", operation_id="get_metrics",
            response_class=PlainTextResponse,
            responses={200: {"description": "The Prometheus text exposition format."}})
async def metrics(rt: RuntimeDep) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
