"""Who calls a route behind an API key or a session token, and whether they may; each
call charged to the caller's and the account's rate limits (``web/ratelimits.py``).

Every route of an account declares what it needs with one of the aliases below
(``MaySendMessages``, ``AnyMember``, …), each a ``Require``; ``tests/api/
test_route_permissions.py`` walks the routes, fails on one that declares nothing and
calls each as every role, expecting exactly the matrix of ``accounts/permissions.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Response

from tidings.accounts.auth import Principal
from tidings.accounts.permissions import Permission
from tidings.core.services import Services
from tidings.users.sessions import MFA_REQUIRED, PASSWORD_CHANGE_REQUIRED
from tidings.web.deps import API_KEY, RuntimeDep
from tidings.web.errors import Forbidden
from tidings.web.ratelimits import Quota, charge_once


async def get_principal(
    request: Request,
    response: Response,
    rt: RuntimeDep,
    authorization: Annotated[str | None, Depends(API_KEY)],
    tidings_account: Annotated[str | None, Header(
        max_length=40, description="Act on this sub-account of the key's account.")] = None,
) -> Principal:
    principal, quota = await charged_principal(rt, request, authorization, tidings_account)
    if quota is not None:
        response.headers.update(quota.headers())
    return principal


async def charged_principal(rt: Services, request: Request, authorization: str | None,
                           on_behalf_of: str | None) -> tuple[Principal, Quota | None]:
    """Who holds ``authorization`` (acting on ``on_behalf_of``), the request charged to
    their credential's and their account's rate limits: the API's and the portal's."""
    client = request.client.host if request.client else None
    principal = await rt.auth.authenticate(authorization, on_behalf_of, client_ip=client)
    actor = principal.actor
    quota = await charge_once(
        rt.rate_limits, request.scope, account_id=principal.account_id,
        credential=(actor.type, actor.id),
        account_rps=await rt.account_rights.requests_per_second(principal.account_id))
    return principal, quota


def check_permission(principal: Principal, permission: Permission | None, *,
                     passes: frozenset[str] = frozenset()) -> None:
    """A 403 unless ``principal`` holds ``permission`` (None: any member of the account)
    and has nothing else to do first, but what ``passes`` lets through."""
    if principal.gate is not None and principal.gate not in passes:
        raise Forbidden(_GATE_DETAIL[principal.gate], code=principal.gate)
    if permission is not None and not principal.may(permission):
        raise Forbidden(f"This needs the permission {permission.value!r}, which your "
                        f"{'role' if principal.user_id else 'API key'} does not have.",
                        code="permission_denied", permission=permission.value)


class Require:
    """A route's declared permission, checked for the caller; it hands on the principal.

    ``permission`` None admits any user or key of the account (reading the account
    itself). ``passes`` names gates to let through (the ways out of a gate, changing a
    password or enrolling a second factor, are ``users/deps.py``'s, for any person).
    """

    def __init__(self, permission: Permission | None, *,
                 passes: frozenset[str] = frozenset()) -> None:
        self.permission, self.passes = permission, passes

    async def __call__(self, principal: Annotated[Principal, Depends(get_principal)]
                       ) -> Principal:
        check_permission(principal, self.permission, passes=self.passes)
        return principal


_GATE_DETAIL = {
    PASSWORD_CHANGE_REQUIRED: "Change your password first (POST /v1/auth/password).",
    MFA_REQUIRED: "Your role needs a second factor: enrol one first "
                  "(POST /v1/auth/mfa/totp).",
}

_P = Permission
AnyMember = Annotated[Principal, Depends(Require(None))]
MaySendMessages = Annotated[Principal, Depends(Require(_P.MESSAGES_SEND))]
MayReadMessages = Annotated[Principal, Depends(Require(_P.MESSAGES_READ))]
MayManageNumbers = Annotated[Principal, Depends(Require(_P.NUMBERS_MANAGE))]
MayManageWebhooks = Annotated[Principal, Depends(Require(_P.WEBHOOKS_MANAGE))]
MayManageKeys = Annotated[Principal, Depends(Require(_P.KEYS_MANAGE))]
MayManageUsers = Annotated[Principal, Depends(Require(_P.USERS_MANAGE))]
MayManageSubaccounts = Annotated[Principal, Depends(Require(_P.SUBACCOUNTS_MANAGE))]
MayReadAudit = Annotated[Principal, Depends(Require(_P.AUDIT_READ))]
MayReadReports = Annotated[Principal, Depends(Require(_P.REPORTS_READ))]
MayManagePrivacy = Annotated[Principal, Depends(Require(_P.PRIVACY_MANAGE))]
MayManageConsents = Annotated[Principal, Depends(Require(_P.CONSENTS_MANAGE))]
