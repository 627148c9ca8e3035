"""The operator's service statistics over HTTP (``GET /v1/operator/stats/traffic``), and
the same functions for the console's Traffic page and ``tidings stats traffic``."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from tidings.core.services import Services
from tidings.messaging.schemas import Channel
from tidings.operators.deps import CurrentOperator
from tidings.storage.db import SYSTEM
from tidings.usage_stats.publish import Counts, published, totals
from tidings.usage_stats.schemas import TrafficBucketOut, TrafficOut, TrafficTotalsOut
from tidings.usage_stats.service import built_through
from tidings.web.deps import PROBLEMS_OF_OPERATOR_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import InvalidRequest

operator_router = APIRouter(prefix="/v1/operator/stats", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)

MAX_DAYS = 366
DEFAULT_DAYS = 30
COUNTRY_PATTERN = r"^([A-Z]{2}|other)$"
CSV_COLUMNS = ("day", "channel", "direction", "country", "messages", "segments",
               "delivered", "failed", "subjects")


# --------------------------------------------------------------------------- shared


def parse_day(raw: str, *, parameter: str) -> date:
    """A day as ``YYYY-MM-DD`` exactly (no week dates, no times, no timestamps)."""
    try:
        if len(raw) != len("YYYY-MM-DD") or raw[4] != "-" or raw[7] != "-":
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{parameter!r} must be a day as YYYY-MM-DD.",
                             code="invalid_date", parameter=parameter) from None


def day_range(raw_first: str | None, raw_last: str | None, *,
              today: date) -> tuple[date, date]:
    """The days asked for, both included; by default the 30 days before today."""
    last = parse_day(raw_last, parameter="to") if raw_last is not None else (
        today - timedelta(days=1))
    first = parse_day(raw_first, parameter="from") if raw_first is not None else (
        last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise InvalidRequest("'from' must not be after 'to'.", code="invalid_range",
                             parameter="from")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidRequest(f"At most {MAX_DAYS} days at a time.", code="range_too_long",
                             parameter="to")
    return first, last


async def traffic_report(rt: Services, *, first: date, last: date,
                         channel: str | None = None, country: str | None = None) -> TrafficOut:
    """The buckets that may be shown, and their totals."""
    k = rt.settings.stats_min_subjects
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        shown = await published(session, first=first, last=last, min_subjects=k,
                                channel=channel, country=country)
        newest = await built_through(session)
    summed = totals(shown)
    return TrafficOut(first_day=first, last_day=last, min_subjects=k, built_through=newest,
                      buckets=[_bucket_out(b) for b in shown],
                      totals=TrafficTotalsOut(messages=summed.messages,
                                              segments=summed.segments,
                                              delivered=summed.delivered,
                                              failed=summed.failed))


def traffic_csv(report: TrafficOut) -> str:
    """The buckets as CSV, one a line (no totals line: a sheet adds up what it shows)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for b in report.buckets:
        writer.writerow([b.day.isoformat(), b.channel, b.direction, b.country or "",
                         b.messages, b.segments, b.delivered, b.failed, b.subjects])
    return out.getvalue()


def _bucket_out(bucket: Counts) -> TrafficBucketOut:
    return TrafficBucketOut(day=bucket.day, channel=bucket.channel,
                            direction=bucket.direction, country=bucket.country,
                            messages=bucket.messages, segments=bucket.segments,
                            delivered=bucket.delivered, failed=bucket.failed,
                            subjects=bucket.subjects)


# --------------------------------------------------------------------------- routes


@operator_router.get(
    "/traffic", response_model=TrafficOut, summary="The platform's traffic, de-identified",
    operation_id="get_traffic_stats", dependencies=[KnownQueryOnly],
    responses={200: {"content": {"application/json": {}, "text/csv": {}},
                     "description": "JSON, or CSV with Accept: text/csv."}})
async def traffic_endpoint(
    request: Request, rt: RuntimeDep, operator: CurrentOperator,
    first: Annotated[str | None, Query(
        alias="from", description="The first day, YYYY-MM-DD (UTC); by default 30 days "
                                  "before `to`.")] = None,
    last: Annotated[str | None, Query(
        alias="to", description="The last day, included; by default yesterday. At most "
                                "366 days from `from`.")] = None,
    channel: Channel | None = None,
    country: Annotated[str | None, Query(
        pattern=COUNTRY_PATTERN, description="Two capital letters, or `other`.")] = None,
) -> Response:
    """Messages, segments, delivered, failed and people by day, channel, direction and
    country, counted from de-identified messages; a bucket of fewer than
    `min_subjects` people is not shown, and is in no total."""
    start, end = day_range(first, last, today=rt.clock.now().date())
    report = await traffic_report(rt, first=start, last=end,
                                  channel=channel.value if channel else None, country=country)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(traffic_csv(report), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="traffic-{start}-{end}.csv"'})
    return JSONResponse(report.model_dump(mode="json"))
