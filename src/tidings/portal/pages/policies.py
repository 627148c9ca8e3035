"""Policies: the versions of the platform's privacy policy, DPA and terms the account was
told of, each with where it stands (the month to object running, objected, accepted,
or accepted by silence past the deadline); a version's page with its summary and
whole text, where a person objects in writing or accepts it.

Each action is the API's own (``policies/api.py``), so the page does exactly what
``/v1/policies`` does, with the same checks and audit events.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.core.services import Services
from tidings.policies.api import accept, fetch_notice, fetch_notices, object_to
from tidings.policies.notifying import KIND_NAMES
from tidings.policies.schemas import REASON_MAX_CHARS, ObjectToPolicy
from tidings.portal.deps import PageManagePrivacy
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import NotFound, TidingsError

router = APIRouter(prefix="/portal/policies", include_in_schema=False)
Field = Annotated[str, Form()]
ID_LENGTH = 40  # a version's id; a path longer is none


@router.get("")
async def list_page(request: Request, rt: RuntimeDep,
                    principal: PageManagePrivacy) -> Response:
    notices = await fetch_notices(rt, tenant=principal.tenant)
    return render(request, "policies.html", principal=principal, notices=notices,
                  kinds=KIND_NAMES)


@router.get("/{version_id}")
async def version_page(request: Request, rt: RuntimeDep, version_id: str,
                       principal: PageManagePrivacy) -> Response:
    return await _version(request, rt, principal, version_id, FormErrors())


@router.post("/{version_id}/objection")
async def object_page(request: Request, rt: RuntimeDep, version_id: str,
                      principal: PageManagePrivacy, reason: Field = "") -> Response:
    errors = FormErrors()
    reason = text_field(errors, "reason", reason, label="Your reason",
                        max_length=REASON_MAX_CHARS)
    if not errors:
        try:
            await object_to(rt, tenant=principal.tenant, version_id=_id(version_id),
                            body=ObjectToPolicy(reason=reason), actor=principal.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"reason"})
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add("reason" if refused.extra.get("parameter") == "reason" else "",
                       refused.detail)
        else:
            return redirect(request, f"/portal/policies/{_id(version_id)}?answered=1")
    return await _version(request, rt, principal, version_id, errors,
                          reason=reason[:REASON_MAX_CHARS], status=400)


@router.post("/{version_id}/acceptance")
async def accept_page(request: Request, rt: RuntimeDep, version_id: str,
                      principal: PageManagePrivacy) -> Response:
    errors = FormErrors()
    try:
        await accept(rt, tenant=principal.tenant, version_id=_id(version_id),
                     actor=principal.actor)
    except NotFound:
        raise
    except TidingsError as refused:
        errors.add("", refused.detail)
    else:
        return redirect(request, f"/portal/policies/{_id(version_id)}?answered=1")
    return await _version(request, rt, principal, version_id, errors, status=400)


async def _version(request: Request, rt: Services, principal: Principal, version_id: str,
                   errors: FormErrors, *, reason: str = "", status: int = 200) -> Response:
    """A version's page; 404 for one the account was not told of, as the API answers."""
    notice = await fetch_notice(rt, tenant=principal.tenant, version_id=_id(version_id))
    return render(request, "policy.html", principal=principal, notice=notice,
                  errors=errors, reason=reason, kinds=KIND_NAMES,
                  answered=request.query_params.get("answered") == "1",
                  reason_max=REASON_MAX_CHARS, status=status)


def _id(raw: str) -> str:
    return raw[:ID_LENGTH]
