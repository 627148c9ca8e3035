"""``GET /v1/reports/messages``: how the account's messages fared over the last
``days`` days, 1 to 90: counts by status and channel, the delivery rate, failures by
error code; what the portal's dashboard shows, for programs."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tidings.accounts.deps import MayReadReports
from tidings.messaging.stats import period
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=PROBLEMS_OF_API_KEY_ROUTES)


class FailureCount(BaseModel):
    error_code: str
    messages: int


class MessageReport(BaseModel):
    days: int
    total: int
    by_status: dict[str, int]
    by_channel: dict[str, int]
    delivery_rate: float | None = Field(
        description="Delivered among outbound messages whose fate is known; null: none yet.")
    failures_by_error_code: list[FailureCount] = Field(description="The most frequent first.")


@router.get("/messages", response_model=MessageReport, summary="Messages of a recent period",
            operation_id="report_messages", dependencies=[KnownQueryOnly])
async def message_report(rt: RuntimeDep, principal: MayReadReports,
                         days: Annotated[int, Query(ge=1, le=90)] = 30) -> MessageReport:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        found = await period(session, tenant=principal.tenant,
                             since=rt.clock.now() - timedelta(days=days))
    return MessageReport(
        days=days, total=found.total, by_status=dict(found.by_status),
        by_channel=dict(found.by_channel), delivery_rate=found.delivery_rate,
        failures_by_error_code=[FailureCount(error_code=code, messages=n)
                                for code, n in found.failures_by_code()])
