"""The account's audit trail: who did what to which row and which fields (never the
values), filtered, newest first; and **Verify the chain**, which checks that no event
is missing, changed or re-sealed (``audit/verify.py``, reads only). The API's own
endpoints: ``GET /v1/audit-events`` and ``POST /v1/audit-events/verify``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.audit.api import ChainCheckOut, list_endpoint, verify_endpoint
from tidings.portal.deps import PageReadAudit
from tidings.portal.forms import FormErrors, date_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/audit", include_in_schema=False)
ACTOR = re.compile(r"([a-z_]{1,20}:)?[A-Za-z0-9_.@-]{1,120}")
ACTION = re.compile(r"[a-z_.]{1,40}")


@router.get("")
async def audit_page(request: Request, rt: RuntimeDep, principal: PageReadAudit) -> Response:
    return await _page(request, rt, principal, check=None)


@router.post("/verify")
async def verify(request: Request, rt: RuntimeDep, principal: PageReadAudit) -> Response:
    return await _page(request, rt, principal, check=await verify_endpoint(rt, principal))


async def _page(request: Request, rt: RuntimeDep, principal: PageReadAudit,
                check: ChainCheckOut | None) -> Response:
    query = request.query_params
    errors = FormErrors()
    actor = _matching(errors, "actor", query.get("actor", ""), ACTOR)
    action = _matching(errors, "action", query.get("action", ""), ACTION)
    since, until = date_field(errors, "from", query.get("from", "")), date_field(errors, "until",
                                                                    query.get("until", ""))
    events, next_href = [], None
    if not errors:
        try:
            page = await list_endpoint(
                rt, principal, actor=actor, action=action,
                since=datetime.combine(since, time(), UTC) if since else None,
                until=datetime.combine(until + timedelta(days=1), time(), UTC)
                if until else None, limit=50, cursor=query.get("cursor", "")[:20] or None)
        except TidingsError as refused:
            errors.add("cursor", refused.detail)
        else:
            events = page.data
            if page.next_cursor:
                next_href = "/portal/audit?" + urlencode({**dict(query),
                                                          "cursor": page.next_cursor})
    return render(request, "audit.html", principal=principal, events=events,
                  next_href=next_href, errors=errors, query=dict(query), check=check,
                  status=400 if errors else 200)


def _matching(errors: FormErrors, name: str, raw: str, pattern: re.Pattern[str]) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not pattern.fullmatch(value):
        errors.add(name, _("That is not a value this filter takes."))
        return None
    return value


