"""API keys: the account's keys, a new one (shown once, with a copy button) with the
scopes chosen, revoking one. Each action is the API's own endpoint (``accounts/api.py``),
so a page can do exactly what ``POST /v1/keys`` and ``DELETE /v1/keys/{id}`` can."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.api import create_key, list_keys, revoke_key
from tidings.accounts.auth import Principal
from tidings.accounts.schemas import CreateApiKey, NewApiKeyOut
from tidings.core.services import Services
from tidings.portal.deps import PageManageKeys
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/keys", include_in_schema=False)


@router.get("")
async def keys_page(request: Request, rt: RuntimeDep, principal: PageManageKeys) -> Response:
    return await _page(request, rt, principal, FormErrors())


@router.post("")
async def create(request: Request, rt: RuntimeDep, principal: PageManageKeys,
                 name: Annotated[str, Form()] = "",
                 scopes: Annotated[list[str] | None, Form()] = None) -> Response:
    errors = FormErrors()
    name = text_field(errors, "name", name, label="Name", max_length=200)
    chosen = [s[:60] for s in (scopes or [])[:40]]
    if not errors:
        try:
            made = await create_key(CreateApiKey(name=name, scopes=chosen or None), rt,
                                    principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"name", "scopes"})
        except TidingsError as refused:
            errors.add("scopes" if "scope" in refused.code else "", refused.detail)
        else:
            return await _page(request, rt, principal, errors, made=made)
    return await _page(request, rt, principal, errors, name=name, status=400)


@router.post("/{key_id}/revoke")
async def revoke(request: Request, rt: RuntimeDep, key_id: str,
                 principal: PageManageKeys) -> Response:
    await revoke_key(key_id, rt, principal)
    return redirect(request, "/portal/keys")


async def _page(request: Request, rt: Services, principal: Principal, errors: FormErrors, *,
                made: NewApiKeyOut | None = None, name: str = "",
                status: int = 200) -> Response:
    keys = await list_keys(rt, principal)
    return render(request, "keys.html", principal=principal, keys=keys, made=made,
                  errors=errors, name=name, grantable=sorted(principal.permissions),
                  status=status)
