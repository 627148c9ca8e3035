"""The dashboard: messages today and over the last 7 and 30 days, by status and channel,
the delivery rate, failures by error code; for a parent, each sub-account's month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from tidings.accounts.models import Account
from tidings.accounts.permissions import Permission, Role, permissions_of
from tidings.accounts.service import list_accounts
from tidings.core.services import Services
from tidings.messaging.lifecycle import Status
from tidings.messaging.stats import FAILED, Period, period, periods
from tidings.portal.charts import Bar, bar_chart
from tidings.portal.deps import AnyPerson, PageReadReports
from tidings.portal.errors import redirect
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep

router = APIRouter(prefix="/portal", include_in_schema=False)
MAX_SUBACCOUNTS_SHOWN = 20
_STATUS_ORDER = [s.value for s in Status]


@dataclass(frozen=True)
class SubaccountMonth:
    id: str
    name: str
    month: Period


# Where ``/portal`` leads: the first page of these that the person's role may see.
LANDING = ((Permission.REPORTS_READ, "/portal/dashboard"),
           (Permission.MESSAGES_READ, "/portal/messages"),
           (Permission.MESSAGES_SEND, "/portal/send"))


@router.get("")
async def landing(request: Request, person: AnyPerson) -> Response:
    """The operator's staff to their console; a client's user to the first page the
    role may see (a role that may see none of them: changing one's password)."""
    if person.account_id is None:
        return redirect(request, "/operator")
    granted = permissions_of(Role(person.role))
    for permission, path in LANDING:
        if permission in granted:
            return redirect(request, path)
    return redirect(request, "/portal/password")


@router.get("/dashboard")
async def dashboard(request: Request, rt: RuntimeDep, principal: PageReadReports) -> Response:
    now = rt.clock.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tenant = principal.tenant
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        today, week, month = await periods(session, tenant=tenant, starts=[
            midnight, now - timedelta(days=7), now - timedelta(days=30)])
        children = await list_accounts(session, parent_id=tenant)
    subaccounts = await _subaccount_months(rt, children[:MAX_SUBACCOUNTS_SHOWN], now)
    return render(request, "dashboard.html", principal=principal,
                  periods=[(_("Today"), today), (_("Last 7 days"), week),
                           (_("Last 30 days"), month)],
                  status_chart=_status_chart(month), channel_chart=_channel_chart(month),
                  failures=month.failures_by_code(), subaccounts=subaccounts,
                  more_subaccounts=max(len(children) - MAX_SUBACCOUNTS_SHOWN, 0))


async def _subaccount_months(rt: Services, children: list[Account],
                             now: datetime) -> list[SubaccountMonth]:
    out = []
    for child in children:
        async with rt.db.transaction(tenant=child.id, write=False) as session:
            month = await period(session, tenant=child.id, since=now - timedelta(days=30))
        out.append(SubaccountMonth(child.id, child.name, month))
    return out


def _status_chart(month: Period) -> Markup:
    bars = [Bar(_(status), month.by_status[status],
                "failed" if status in FAILED else status)
            for status in _STATUS_ORDER if month.by_status[status]]
    return bar_chart(bars, title=_("Messages of the last 30 days by status"))


def _channel_chart(month: Period) -> Markup:
    bars = [Bar(channel, count, "channel") for channel, count in month.by_channel.most_common()]
    return bar_chart(bars, title=_("Messages of the last 30 days by channel"))
