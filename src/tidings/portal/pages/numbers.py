"""Numbers and e-mail addresses: the account's own, each with its inbound webhook URL;
claiming one (a code is sent to it through the platform, and typed here to prove it)
and releasing one. The API's own endpoints (``numbers/api.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.core.services import Services
from tidings.numbers.api import (
    claim_number,
    list_endpoint,
    release_number,
    update_number,
    verify_claim,
)
from tidings.numbers.schemas import ClaimNumber, UpdateNumber, VerifyClaim
from tidings.portal.deps import PageManageNumbers
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/numbers", include_in_schema=False)
Field = Annotated[str, Form()]


@dataclass(frozen=True)
class PendingClaim:
    """A claim waiting for the code sent to its number."""

    id: str
    number: str


@router.get("")
async def numbers_page(request: Request, rt: RuntimeDep,
                       principal: PageManageNumbers) -> Response:
    return await _page(request, rt, principal, FormErrors())


@router.post("/claims")
async def claim(request: Request, rt: RuntimeDep, principal: PageManageNumbers,
                number: Field = "") -> Response:
    errors = FormErrors()
    number = text_field(errors, "number", number, label="Number or address", max_length=320)
    if not errors:
        background = BackgroundTasks()
        try:
            started = await claim_number(ClaimNumber(number=number), rt, principal, background)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"number"})
        except TidingsError as refused:
            errors.add("number", refused.detail)
        else:
            response = await _page(request, rt, principal, errors,
                                   claim=PendingClaim(started.id, started.number))
            response.background = background  # the code leaves after the page
            return response
    return await _page(request, rt, principal, errors, number=number, status=400)


@router.post("/claims/{claim_id}/verify")
async def verify(request: Request, rt: RuntimeDep, claim_id: str,
                 principal: PageManageNumbers, code: Field = "",
                 number: Field = "") -> Response:
    errors = FormErrors()
    code = text_field(errors, "code", code, label="Code", max_length=16)
    if not errors:
        try:
            await verify_claim(claim_id[:40], VerifyClaim(code=code), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"code"})
        except TidingsError as refused:
            errors.add("code", refused.detail)
        else:
            return redirect(request, "/portal/numbers")
    return await _page(request, rt, principal, errors,
                       claim=PendingClaim(claim_id[:40], number[:320]), status=400)


@router.post("/{number_id}/webhook")
async def set_webhook(request: Request, rt: RuntimeDep, number_id: str,
                      principal: PageManageNumbers, webhook_url: Field = "") -> Response:
    errors = FormErrors()
    url = text_field(errors, "webhook_url", webhook_url, label="Webhook URL", max_length=2048,
                     required=False)
    if not errors:
        try:
            await update_number(number_id[:40], UpdateNumber(webhook_url=url or None), rt,
                                principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"webhook_url"})
        except TidingsError as refused:
            errors.add("webhook_url", refused.detail)
        else:
            return redirect(request, "/portal/numbers")
    return await _page(request, rt, principal, errors, status=400)


@router.post("/{number_id}/release")
async def release(request: Request, rt: RuntimeDep, number_id: str,
                  principal: PageManageNumbers) -> Response:
    await release_number(number_id[:40], rt, principal)
    return redirect(request, "/portal/numbers")


async def _page(request: Request, rt: Services, principal: Principal, errors: FormErrors, *,
                claim: PendingClaim | None = None, number: str = "",
                status: int = 200) -> Response:
    numbers = await list_endpoint(rt, principal)
    return render(request, "numbers.html", principal=principal, numbers=numbers,
                  errors=errors, claim=claim, number=number, status=status)
