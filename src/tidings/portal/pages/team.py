"""The team: the account's users, inviting one (a temporary password shown once, to be
changed at the first log-in), changing a role, disabling and enabling. The API's own
endpoints (``users/api.py``): nobody hands out more than their own permissions, nobody
changes their own role, an account keeps an owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.accounts.permissions import Role
from tidings.core.services import Services
from tidings.portal.deps import PageManageUsers
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import render
from tidings.users.api import invite, list_endpoint, update
from tidings.users.schemas import InviteUser, NewUserOut, UpdateUser
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/team", include_in_schema=False)
ROLES = [role.value for role in Role]


@router.get("")
async def team_page(request: Request, rt: RuntimeDep, principal: PageManageUsers) -> Response:
    return await _page(request, rt, principal, FormErrors())


@router.post("")
async def invite_user(request: Request, rt: RuntimeDep, principal: PageManageUsers,
                      email: Annotated[str, Form()] = "",
                      role: Annotated[str, Form()] = "") -> Response:
    errors = FormErrors()
    email = text_field(errors, "email", email, label="Email", max_length=320)
    if role not in ROLES:
        errors.add("role", "Choose one of the listed roles.")
    if not errors:
        try:
            made = await invite(InviteUser(email=email, role=role), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"email", "role"})
        except TidingsError as refused:
            errors.add("role" if "role" in refused.code else "email", refused.detail)
        else:
            return await _page(request, rt, principal, errors, made=made)
    return await _page(request, rt, principal, errors, email=email, status=400)


@router.post("/{user_id}")
async def change_user(request: Request, rt: RuntimeDep, user_id: str,
                      principal: PageManageUsers, role: Annotated[str, Form()] = "",
                      action: Annotated[str, Form()] = "") -> Response:
    changes = {"role": {"role": role}, "disable": {"disabled": True},
               "enable": {"disabled": False}}
    errors = FormErrors()
    if action not in changes or (action == "role" and role not in ROLES):
        errors.add("", "Choose a role, or disable or enable the user.")
    else:
        change = UpdateUser.model_validate(changes[action])
        try:
            await update(user_id, change, rt, principal)
        except TidingsError as refused:
            errors.add("", refused.detail)
        else:
            return redirect(request, "/portal/team")
    return await _page(request, rt, principal, errors, status=400)


async def _page(request: Request, rt: Services, principal: Principal, errors: FormErrors, *,
                made: NewUserOut | None = None, email: str = "", status: int = 200) -> Response:
    users = await list_endpoint(rt, principal)
    return render(request, "team.html", principal=principal, users=users, made=made,
                  errors=errors, email=email, roles=ROLES, status=status)
