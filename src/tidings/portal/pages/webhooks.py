"""Webhooks: where the account's webhooks go and which status changes it wants, the
recent deliveries with their attempts, and **Resend** for a finished one. The same
endpoints as ``PATCH /v1/account`` and ``POST /v1/webhook-deliveries/{id}/resend``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.api import read_account, update_account
from tidings.accounts.auth import Principal
from tidings.accounts.schemas import UpdateAccount
from tidings.core.services import Services
from tidings.portal.deps import PageManageWebhooks
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError
from tidings.webhooks.api import resend
from tidings.webhooks.service import list_deliveries
from tidings.webhooks.subscriptions import CHOICES

router = APIRouter(prefix="/portal/webhooks", include_in_schema=False)
RECENT = 50


@router.get("")
async def webhooks_page(request: Request, rt: RuntimeDep,
                        principal: PageManageWebhooks) -> Response:
    account = await read_account(rt, principal)
    return await _page(request, rt, principal, FormErrors(),
                       {"webhook_url": account.webhook_url or "",
                        "statuses": account.webhook_statuses})


@router.post("")
async def save(request: Request, rt: RuntimeDep, principal: PageManageWebhooks,
               webhook_url: Annotated[str, Form()] = "",
               statuses: Annotated[list[str] | None, Form()] = None,
               every_change: Annotated[str, Form()] = "") -> Response:
    errors = FormErrors()
    url = text_field(errors, "webhook_url", webhook_url, label="Webhook URL",
                     max_length=2048, required=False)
    chosen = None if every_change else [s[:30] for s in (statuses or [])[:20]]
    values = {"webhook_url": url, "statuses": chosen}
    if chosen == []:
        errors.add("statuses", "Tick at least one status, or every change.")
    if not errors:
        try:
            await update_account(UpdateAccount(webhook_url=url or None,
                                               webhook_statuses=chosen), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"webhook_url", "webhook_statuses"})
        except TidingsError as refused:
            errors.add("webhook_url" if "url" in refused.code else "", refused.detail)
        else:
            return redirect(request, "/portal/webhooks?saved=1")
    return await _page(request, rt, principal, errors, values, status=400)


@router.post("/deliveries/{delivery_id}/resend")
async def resend_delivery(request: Request, rt: RuntimeDep, delivery_id: str,
                          principal: PageManageWebhooks) -> Response:
    again = await resend(delivery_id, rt, principal)
    return redirect(request, f"/portal/messages/{again.message_id}#{again.id}")


async def _page(request: Request, rt: Services, principal: Principal, errors: FormErrors,
                values: dict[str, Any], *, status: int = 200) -> Response:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        deliveries = await list_deliveries(session, tenant=principal.tenant, message_id=None,
                                           status=None, cursor=None, limit=RECENT)
    return render(request, "webhooks.html", principal=principal, errors=errors,
                  values=values, choices=CHOICES, deliveries=deliveries,
                  saved=request.query_params.get("saved") == "1", status=status)
