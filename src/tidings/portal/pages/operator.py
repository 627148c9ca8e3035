"""The operator's console (``/operator``), for staff logged in with a second factor:
the platform at a glance, clients' accounts to verify, suspend or terminate (each
decision with its reason), and the connectors with their live links and the routes.
Each action is the operator API's own endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.models import AccountStatus
from tidings.operators.accounts_api import SetStatusIn, list_all, set_status
from tidings.operators.deps import Operator
from tidings.operators.platform_stats import platform_now
from tidings.portal.deps import StaffMember
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import render
from tidings.routing.api import get_connectors, get_routes, show_connector_errors
from tidings.signup.api import list_pending, reject_endpoint, verify_endpoint
from tidings.signup.schemas import RejectAccountIn, VerifyAccountIn
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/operator", include_in_schema=False)
Field = Annotated[str, Form()]
DECISIONS = ("trial", "active", "reject", "suspended", "terminated")
# The verification details a client gave (signup.schemas.VerificationDetailsOut), in words.
DETAIL_LABELS = {"legal_name": "Legal name", "country": "Country",
                 "registration_number": "Registration number", "contact_name": "Contact",
                 "contact_email": "Contact's e-mail", "contact_phone": "Contact's phone",
                 "intended_use": "Intended use"}
LAST_ERRORS = 5


@router.get("")
async def platform(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    now = await platform_now(rt, rt.clock.now())
    return render(request, "operator/platform.html", principal=None, staff=operator, now=now)


@router.get("/accounts")
async def accounts(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    return await _accounts_page(request, rt, operator, FormErrors())


@router.post("/accounts/{account_id}")
async def decide(request: Request, rt: RuntimeDep, account_id: str, operator: StaffMember,
                 decision: Field = "", reason: Field = "") -> Response:
    """Verify (as a trial or active), reject, suspend, reactivate or terminate."""
    errors = FormErrors()
    reason = text_field(errors, f"reason-{account_id[:40]}", reason, label="Reason",
                        max_length=500, required=decision in ("reject", "suspended",
                                                              "terminated"))
    if decision not in (*DECISIONS, "reactivate"):
        errors.add("", "Choose what to do with the account.")
    if not errors:
        try:
            await _apply(rt, operator, account_id[:40], decision, reason or None)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except TidingsError as refused:
            errors.add("", refused.detail)
        else:
            return redirect(request, "/operator/accounts")
    return await _accounts_page(request, rt, operator, errors, status=400)


@router.get("/connectors")
async def connectors(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    configured = await get_connectors(rt, operator)
    links = dict(rt.smpp_snapshots())
    traffic = {c.name: c for c in (await platform_now(rt, rt.clock.now())).connectors}
    errors = {c.name: await show_connector_errors(c.name, rt, operator, limit=LAST_ERRORS)
              for c in configured}
    return render(request, "operator/connectors.html", principal=None, staff=operator,
                  connectors=configured, links=links, last_errors=errors, traffic=traffic,
                  routes=await get_routes(rt, operator),
                  runs_here=rt.settings.run_workers)


async def _apply(rt: RuntimeDep, operator: Operator, account_id: str, decision: str,
                 reason: str | None) -> None:
    if decision in ("trial", "active"):
        await verify_endpoint(account_id, VerifyAccountIn(outcome=decision, note=reason), rt,
                              operator)
    elif decision == "reject":
        await reject_endpoint(account_id, RejectAccountIn(reason=reason or ""), rt, operator)
    else:
        status = AccountStatus.ACTIVE if decision == "reactivate" else AccountStatus(decision)
        await set_status(account_id, SetStatusIn(status=status, reason=reason), rt, operator)


async def _accounts_page(request: Request, rt: RuntimeDep, operator: Operator,
                         errors: FormErrors, *, status: int = 200) -> Response:
    return render(request, "operator/accounts.html", principal=None, staff=operator,
                  pending=await list_pending(rt, operator), detail_labels=DETAIL_LABELS,
                  accounts=await list_all(rt, operator, status=None, limit=200),
                  errors=errors, status=status)
