"""Who looks at a page, and whether they may: the same principal and the same permission
matrix as the API (``accounts/deps.py``), from the session cookie instead of a header.

Without a valid session the browser goes to the log-in page and, once logged in, comes
back to where it was (``LoginRequired``); a person who must first change a password or
enrol a second factor goes to that page (``GateRedirect``); a missing permission is a 403
page. Every unsafe request is checked for the form token first (``csrf.check``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from tidings.accounts.auth import Principal
from tidings.accounts.deps import charged_principal, check_permission
from tidings.accounts.permissions import Permission
from tidings.core.services import Services
from tidings.operators.deps import Operator
from tidings.portal import csrf, session_cookie
from tidings.storage.db import SYSTEM
from tidings.users.sessions import (
    MFA_REQUIRED,
    PASSWORD_CHANGE_REQUIRED,
    SessionPolicy,
    SessionUser,
    load_session,
)
from tidings.web.deps import RuntimeDep
from tidings.web.errors import Forbidden, Unauthorized

LOGIN_PATH = "/portal/login"
GATE_PAGES = {PASSWORD_CHANGE_REQUIRED: "/portal/password", MFA_REQUIRED: "/portal/mfa"}


class LoginRequired(Exception):
    """No valid session: to the log-in page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.location = f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


class GateRedirect(Exception):
    """The person must see to something first (``users/sessions.py``'s gates)."""

    def __init__(self, gate: str) -> None:
        super().__init__(gate)
        self.location = GATE_PAGES[gate]


def safe_next(raw: str | None) -> str:
    """Where to go after logging in: a path of the portal, never another site."""
    if raw and raw.startswith("/portal") and not raw.startswith("/portal/login") \
            and "//" not in raw and "\\" not in raw and len(raw) < 500:
        return raw
    return "/portal"


async def page_principal(request: Request, rt: Services, *,
                         on_behalf_of: str | None = None) -> Principal:
    token = session_cookie.token_of(request)
    if token is None:
        raise LoginRequired(_here(request))
    try:
        principal, _ = await charged_principal(rt, request, f"Bearer {token}", on_behalf_of)
    except Unauthorized:
        raise LoginRequired(_here(request)) from None
    return principal


async def acting_on(request: Request, rt: Services, account_id: str,
                    permission: Permission) -> Principal:
    """The person's principal on ``account_id``, a sub-account of theirs (as the API's
    ``Tidings-Account`` header); ``NotFound`` for any other account."""
    principal = await page_principal(request, rt, on_behalf_of=account_id)
    check_permission(principal, permission)
    return principal


def _here(request: Request) -> str:
    """The page to come back to: this one, or for a form or an htmx request the page
    it was sent from."""
    if request.method == "GET" and not request.headers.get("hx-request"):
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    current = urlsplit(request.headers.get("hx-current-url") or request.headers.get("referer")
                       or "")
    path = current.path + (f"?{current.query}" if current.query else "")
    return safe_next(path)


class PageRequire:
    """A page's declared permission (None: any member of the account), checked for the
    person behind the session cookie: ``accounts.deps.Require`` for pages.
    ``tests/api/test_route_permissions.py`` walks the pages with the routes."""

    def __init__(self, permission: Permission | None, *,
                 passes: frozenset[str] = frozenset()) -> None:
        self.permission, self.passes = permission, passes

    async def __call__(self, request: Request, rt: RuntimeDep) -> Principal:
        await csrf.check(request)
        principal = await page_principal(request, rt)
        if principal.gate is not None and principal.gate not in self.passes:
            raise GateRedirect(principal.gate)
        check_permission(principal, self.permission, passes=self.passes)
        return principal


class PagePerson:
    """The signed-in person, of an account or of the operator's staff: the pages about
    oneself (the landing page, changing a password, enrolling a second factor), as
    ``users.deps.Person`` is for ``/v1/auth``. ``passes`` names the gates let through."""

    def __init__(self, *, passes: frozenset[str] = frozenset()) -> None:
        self.passes = passes

    async def __call__(self, request: Request, rt: RuntimeDep) -> SessionUser:
        await csrf.check(request)
        person = await signed_in_person(request, rt)
        if person.gate is not None and person.gate not in self.passes:
            raise GateRedirect(person.gate)
        return person


class OperatorPage:
    """A member of the operator's staff, logged in with a second factor (as the operator
    API's ``operators.deps.get_operator`` admits a staff session); a client's user gets
    the 403 page."""

    async def __call__(self, request: Request, rt: RuntimeDep) -> Operator:
        await csrf.check(request)
        person = await signed_in_person(request, rt)
        if person.account_id is not None:
            raise Forbidden("These pages are for the operator's staff.",
                            code="not_operator_staff")
        if person.gate is not None:
            raise GateRedirect(person.gate)
        return Operator(person.user_id)


async def signed_in_person(request: Request, rt: Services) -> SessionUser:
    token = session_cookie.token_of(request)
    if token is None:
        raise LoginRequired(_here(request))
    try:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            return await load_session(session, token=token, now=rt.clock.now(),
                                      policy=SessionPolicy.of(rt.settings))
    except Unauthorized:
        raise LoginRequired(_here(request)) from None


_P = Permission
AnyPerson = Annotated[SessionUser, Depends(PagePerson())]
StaffMember = Annotated[Operator, Depends(OperatorPage())]
PageMember = Annotated[Principal, Depends(PageRequire(None))]
PageReadMessages = Annotated[Principal, Depends(PageRequire(_P.MESSAGES_READ))]
PageSendMessages = Annotated[Principal, Depends(PageRequire(_P.MESSAGES_SEND))]
PageReadReports = Annotated[Principal, Depends(PageRequire(_P.REPORTS_READ))]
PageManageKeys = Annotated[Principal, Depends(PageRequire(_P.KEYS_MANAGE))]
PageManageNumbers = Annotated[Principal, Depends(PageRequire(_P.NUMBERS_MANAGE))]
PageManageWebhooks = Annotated[Principal, Depends(PageRequire(_P.WEBHOOKS_MANAGE))]
PageManageSubaccounts = Annotated[Principal, Depends(PageRequire(_P.SUBACCOUNTS_MANAGE))]
PageManageUsers = Annotated[Principal, Depends(PageRequire(_P.USERS_MANAGE))]
PageReadAudit = Annotated[Principal, Depends(PageRequire(_P.AUDIT_READ))]
PageManagePrivacy = Annotated[Principal, Depends(PageRequire(_P.PRIVACY_MANAGE))]
PageManageConsents = Annotated[Principal, Depends(PageRequire(_P.CONSENTS_MANAGE))]
