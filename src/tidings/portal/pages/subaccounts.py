"""Sub-accounts: the account's direct sub-accounts, creating one (its API key shown
once), setting its rights (channels, senders, a monthly cap, requests a second, whether
it may make its own sub-accounts and users), suspending it with a reason and lifting
that. The API's own endpoints (``accounts/api.py``), with their checks: rights never
wider than the parent's, a suspension holds for everything below."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.api import (
    create_sub_account,
    list_sub_accounts,
    read_rights,
    resume_sub_account,
    set_rights,
    suspend_sub_account,
)
from tidings.accounts.auth import Principal
from tidings.accounts.schemas import (
    AccountWithSecrets,
    CreateSubAccount,
    ResumeAccount,
    SetRights,
    SuspendAccount,
)
from tidings.core.services import Services
from tidings.messaging.schemas import Channel
from tidings.portal.deps import PageManageSubaccounts
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/subaccounts", include_in_schema=False)
Field = Annotated[str, Form()]
CHANNELS = [c.value for c in Channel]


@router.get("")
async def subaccounts_page(request: Request, rt: RuntimeDep,
                           principal: PageManageSubaccounts) -> Response:
    return await _page(request, rt, principal, FormErrors())


@router.post("")
async def create(request: Request, rt: RuntimeDep, principal: PageManageSubaccounts,
                 name: Field = "") -> Response:
    errors = FormErrors()
    name = text_field(errors, "name", name, label="Name", max_length=200)
    if not errors:
        try:
            made = await create_sub_account(CreateSubAccount(name=name), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"name"})
        except TidingsError as refused:
            errors.add("name", refused.detail)
        else:
            return await _page(request, rt, principal, errors, made=made)
    return await _page(request, rt, principal, errors, name=name, status=400)


@router.get("/{account_id}")
async def rights_page(request: Request, rt: RuntimeDep, account_id: str,
                      principal: PageManageSubaccounts) -> Response:
    current = await read_rights(account_id, rt, principal)
    values = current.model_dump()
    return _rights_form(request, principal, account_id, values, FormErrors(),
                        effective=current.effective.model_dump())


@router.post("/{account_id}")
async def save_rights(request: Request, rt: RuntimeDep, account_id: str,
                      principal: PageManageSubaccounts,
                      channels: Annotated[list[str] | None, Form()] = None,
                      sender_ids: Field = "", monthly_message_cap: Field = "",
                      requests_per_second: Field = "",
                      may_create_subaccounts: Field = "", may_manage_users: Field = ""
                      ) -> Response:
    errors = FormErrors()
    senders = [s.strip() for s in sender_ids.replace(",", "\n").splitlines() if s.strip()]
    values: dict[str, Any] = {
        "channels": [c for c in (channels or []) if c in CHANNELS] or None,
        "sender_ids": senders or None,
        "monthly_message_cap": _whole(errors, "monthly_message_cap", monthly_message_cap),
        "requests_per_second": _whole(errors, "requests_per_second", requests_per_second),
        "may_create_subaccounts": _yes_no(may_create_subaccounts),
        "may_manage_users": _yes_no(may_manage_users),
    }
    if channels and len(channels) != len([c for c in channels if c in CHANNELS]):
        errors.add("channels", _("Choose among the listed channels."))
    if not errors:
        try:
            saved = await set_rights(account_id, SetRights.model_validate(values), rt,
                                     principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set(values))
        except TidingsError as refused:
            errors.add("", refused.detail)
        else:
            return _rights_form(request, principal, account_id, saved.model_dump(), errors,
                                effective=saved.effective.model_dump(), saved=True)
    return _rights_form(request, principal, account_id, values, errors, effective=None,
                        status=400)


@router.post("/{account_id}/status")
async def change_status(request: Request, rt: RuntimeDep, account_id: str,
                        principal: PageManageSubaccounts, action: Field = "",
                        reason: Field = "") -> Response:
    errors = FormErrors()
    field = f"reason-{account_id[:40]}"
    reason = text_field(errors, field, reason, label="Reason", max_length=500,
                        required=action == "suspend")
    if action not in ("suspend", "resume"):
        errors.add("", _("Choose to suspend or to lift the suspension."))
    if not errors:
        try:
            if action == "suspend":
                await suspend_sub_account(account_id, SuspendAccount(reason=reason), rt,
                                          principal)
            else:
                await resume_sub_account(account_id, ResumeAccount(reason=reason or None),
                                         rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except TidingsError as refused:
            errors.add("", refused.detail)
        else:
            return redirect(request, "/portal/subaccounts")
    return await _page(request, rt, principal, errors, status=400)


def _whole(errors: FormErrors, name: str, raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 13:
        errors.add(name, _("Enter a whole number, or leave it empty for no limit."))
        return None
    return int(raw)


def _yes_no(raw: str) -> bool | None:
    """A select of "as the parent" (empty), "yes" and "no"."""
    return {"yes": True, "no": False}.get(raw)


def _rights_form(request: Request, principal: Principal, account_id: str,
                 values: dict[str, Any], errors: FormErrors, *,
                 effective: dict[str, Any] | None, saved: bool = False,
                 status: int = 200) -> Response:
    return render(request, "subaccount_rights.html", principal=principal,
                  account_id=account_id, values=values, effective=effective, errors=errors,
                  channels=CHANNELS, saved=saved, status=status)


async def _page(request: Request, rt: Services, principal: Principal, errors: FormErrors, *,
                made: AccountWithSecrets | None = None, name: str = "",
                status: int = 200) -> Response:
    children = await list_sub_accounts(rt, principal)
    return render(request, "subaccounts.html", principal=principal, children=children,
                  made=made, errors=errors, name=name, status=status)
