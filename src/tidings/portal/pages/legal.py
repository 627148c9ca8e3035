"""The platform's policies for anyone, without logging in (``/legal``): a kind's version
in force and those announced, each with when it takes effect and a link
(``/legal/<kind>``), and one version whole (``/legal/<kind>/<version>``). Before a
change takes effect, this is where the notice points, and the log-in page says so."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.policies.api import public_policy, public_version
from tidings.policies.notifying import KIND_NAMES
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep, public
from tidings.web.errors import NotFound

router = APIRouter(prefix="/legal", include_in_schema=False)
LABEL_LENGTH = 40  # a version's label; a path longer is none


@router.get("/{kind}", dependencies=[public])
async def policy_page(request: Request, rt: RuntimeDep, kind: str) -> Response:
    shown = await public_policy(rt, _kind(kind))
    if shown.in_force is None and not shown.upcoming:
        raise NotFound(f"No {KIND_NAMES[shown.kind]} is published yet.",
                       code="policy_not_found")
    return render(request, "legal.html", policy=shown, kinds=KIND_NAMES)


@router.get("/{kind}/{version}", dependencies=[public])
async def version_page(request: Request, rt: RuntimeDep, kind: str, version: str) -> Response:
    found, status = await public_version(rt, _kind(kind), version[:LABEL_LENGTH])
    return render(request, "legal_version.html", version=found, standing=status.value,
                  kinds=KIND_NAMES)


def _kind(raw: str) -> str:
    if raw not in KIND_NAMES:
        raise NotFound("There is no such policy; the policies are "
                       + ", ".join(f"/legal/{kind}" for kind in KIND_NAMES) + ".",
                       code="policy_not_found")
    return raw
