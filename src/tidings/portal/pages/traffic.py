"""The platform's traffic in the operator's console (``/operator/traffic``), for staff:
what ``GET /v1/operator/stats/traffic`` answers (buckets of at least k people, the
smaller ones merged or left out), as a table, a chart by day and one by country.

The filters come as text and are checked here, each complaint beside its field; the
range's own rules (at most 366 days, ``from`` not after ``to``) are the API's
(``usage_stats/api.py``), so the page can show nothing the route would not.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import date

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from tidings.portal.charts import Bar, bar_chart
from tidings.portal.deps import StaffMember
from tidings.portal.forms import FormErrors, date_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.usage_stats.api import COUNTRY_PATTERN, day_range, traffic_report
from tidings.usage_stats.schemas import TrafficBucketOut, TrafficOut
from tidings.web.deps import RuntimeDep
from tidings.web.errors import InvalidRequest

router = APIRouter(prefix="/operator/traffic", include_in_schema=False)
CHANNELS = ("sms", "email", "whatsapp")
COUNTRIES_CHARTED = 12
FIELDS = ("from", "to", "channel", "country")


@router.get("")
async def traffic_page(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    query = {name: request.query_params.get(name, "")[:20] for name in FIELDS}
    errors = FormErrors()
    first = date_field(errors, "from", query["from"])
    last = date_field(errors, "to", query["to"])
    channel = query["channel"] or None
    if channel is not None and channel not in CHANNELS:
        errors.add("channel", _("Choose one of the channels."))
    country = query["country"] or None
    if country is not None and not re.fullmatch(COUNTRY_PATTERN, country):
        errors.add("country", _("Two capital letters (US), or other."))
    report = None
    if not errors:
        try:
            start, end = day_range(first.isoformat() if first else None,
                                   last.isoformat() if last else None,
                                   today=rt.clock.now().date())
        except InvalidRequest as refused:
            errors.add(str(refused.extra.get("parameter", "")), refused.detail)
        else:
            report = await traffic_report(rt, first=start, last=end, channel=channel,
                                          country=country)
    return render(request, "operator/traffic.html", principal=None, staff=operator,
                  query=query, errors=errors, report=report, channels=CHANNELS,
                  day_chart=_day_chart(report), country_chart=_country_chart(report),
                  status=400 if errors else 200)


def _day_chart(report: TrafficOut | None) -> Markup | None:
    if report is None or not report.buckets:
        return None
    by_day: Counter[date] = Counter()
    for bucket in report.buckets:
        by_day[bucket.day] += bucket.messages
    return bar_chart([Bar(day.isoformat(), n) for day, n in sorted(by_day.items())],
                     title=_("Messages shown, by day"))


def _country_chart(report: TrafficOut | None) -> Markup | None:
    if report is None or not report.buckets:
        return None
    top = _by_country(report.buckets).most_common(COUNTRIES_CHARTED)
    return bar_chart([Bar(country, n, "channel") for country, n in top],
                     title=_("Messages shown, by country"))


def _by_country(buckets: Sequence[TrafficBucketOut]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for bucket in buckets:
        counted[bucket.country or _("no country")] += bucket.messages
    return counted
