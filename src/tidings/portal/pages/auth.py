"""Logging in and out, the second factor, and the gates: a temporary or old password to
change, a second factor to enrol. The same services as ``/v1/auth`` (``users/``): the
same lock-out, the same audit events, the same answer for every wrong address or
password, so the page reveals nothing about which accounts exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from tidings.core.services import Services
from tidings.policies.api import upcoming_versions
from tidings.portal import csrf, session_cookie
from tidings.portal.deps import PagePerson, safe_next
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, text_field
from tidings.portal.templating import render
from tidings.storage.db import SYSTEM
from tidings.users.credentials import change_password
from tidings.users.login import (
    LoggedIn,
    complete_second_factor,
    failures_counted,
    log_in,
)
from tidings.users.mfa import confirm_enrolment, pending_or_new_enrolment
from tidings.users.models import User
from tidings.users.service import UserView, user_view
from tidings.users.sessions import (
    MFA_REQUIRED,
    PASSWORD_CHANGE_REQUIRED,
    SessionUser,
    end_session_of_token,
)
from tidings.web.deps import RuntimeDep, public
from tidings.web.errors import TidingsError, Unauthorized

router = APIRouter(prefix="/portal", include_in_schema=False)
FormToken = Depends(csrf.check)
Field = Annotated[str, Form()]
# The pages that lead out of a gate let that gate through; staff use them too.
Changing = Annotated[SessionUser, Depends(PagePerson(passes=frozenset(
    {PASSWORD_CHANGE_REQUIRED, MFA_REQUIRED})))]
Enrolling = Annotated[SessionUser, Depends(PagePerson(passes=frozenset({MFA_REQUIRED})))]


@router.get("/login", dependencies=[public])
async def login_page(request: Request, rt: RuntimeDep, next: str = "") -> Response:
    # The policies promise a notice where clients log in before a change takes effect.
    return render(request, "login.html", next=safe_next(next), email="", errors=FormErrors(),
                  upcoming=await upcoming_versions(rt))


@router.post("/login", dependencies=[public, FormToken])
async def login_submit(request: Request, rt: RuntimeDep, email: Field = "",
                       password: Field = "", next: Field = "") -> Response:
    errors = FormErrors()
    email = text_field(errors, "email", email, label="Email", max_length=320)
    password = text_field(errors, "password", password, label="Password", max_length=1024,
                          strip=False)
    if errors:
        return _login_form(request, email, next, errors)
    try:
        async with failures_counted(rt, _address(request)):
            outcome = await log_in(rt, email=email, password=password)
    except TidingsError as refused:
        return _login_form(request, email, next, errors.add("password", refused.detail),
                           status=refused.status)
    if isinstance(outcome, LoggedIn):
        return _signed_in(request, rt, outcome, next)
    return render(request, "login_code.html", challenge=outcome.challenge,
                  next=safe_next(next), errors=FormErrors())


@router.post("/login/code", dependencies=[public, FormToken])
async def login_code(request: Request, rt: RuntimeDep, challenge: Field = "",
                     code: Field = "", next: Field = "") -> Response:
    errors = FormErrors()
    code = text_field(errors, "code", code, label="Code", max_length=32)
    if len(challenge) > 2000:
        challenge = ""
    if not errors:
        try:
            async with failures_counted(rt, _address(request)):
                done = await complete_second_factor(rt, challenge=challenge, code=code)
        except Unauthorized as refused:
            if refused.code in ("challenge_expired", "invalid_challenge"):
                return _login_form(request, "", next,
                                   FormErrors().add("password", refused.detail), status=401)
            errors.add("code", refused.detail)
        except TidingsError as refused:
            errors.add("code", refused.detail)
        else:
            return _signed_in(request, rt, done, next)
    return render(request, "login_code.html", challenge=challenge, next=safe_next(next),
                  errors=errors, status=400 if errors else 200)


@router.post("/logout", dependencies=[public, FormToken])
async def logout(request: Request, rt: RuntimeDep) -> Response:
    token = session_cookie.token_of(request)
    if token is not None:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await end_session_of_token(session, token=token, now=rt.clock.now())
        rt.auth.invalidate()
    response = redirect(request, "/portal/login")
    session_cookie.forget(request, response)
    csrf.remember(request, response, csrf.renew(request))
    return response


@router.get("/password")
async def password_page(request: Request, person: Changing) -> Response:
    return render(request, "password.html", principal=None, errors=FormErrors(),
                  forced=person.gate == PASSWORD_CHANGE_REQUIRED)


@router.post("/password")
async def password_submit(request: Request, rt: RuntimeDep, person: Changing,
                          current_password: Field = "", new_password: Field = "") -> Response:
    errors = FormErrors()
    current = text_field(errors, "current_password", current_password,
                         label="Current password", max_length=1024, strip=False)
    new = text_field(errors, "new_password", new_password, label="New password",
                     max_length=1024, strip=False)
    if not errors:
        try:
            await change_password(rt, user_id=person.user_id, session_id=person.session_id,
                                  current=current, new=new)
        except TidingsError as refused:
            field = "current_password" if refused.code == "wrong_password" else "new_password"
            errors.add(field, refused.detail)
        else:
            rt.auth.invalidate()
            return redirect(request, "/portal")
    return render(request, "password.html", principal=None, errors=errors, status=400,
                  forced=person.gate == PASSWORD_CHANGE_REQUIRED)


@router.get("/mfa")
async def mfa_page(request: Request, rt: RuntimeDep, person: Enrolling) -> Response:
    view = await _user_view(rt, person.user_id)
    if view.mfa_enabled:
        return render(request, "mfa.html", principal=None, enrolled=True,
                      enrolment=None, errors=FormErrors(), recovery_codes=None)
    enrolment = await pending_or_new_enrolment(rt, user_id=view.id, email=view.email)
    return render(request, "mfa.html", principal=None, enrolled=False,
                  enrolment=enrolment, errors=FormErrors(), recovery_codes=None)


@router.post("/mfa")
async def mfa_confirm(request: Request, rt: RuntimeDep, person: Enrolling,
                      code: Field = "") -> Response:
    errors = FormErrors()
    code = text_field(errors, "code", code, label="Code", max_length=32)
    if not errors:
        try:
            codes = await confirm_enrolment(rt, user_id=person.user_id, code=code)
        except TidingsError as refused:
            errors.add("code", refused.detail)
        else:
            rt.auth.invalidate()
            return render(request, "mfa.html", principal=None, enrolled=True,
                          enrolment=None, errors=errors, recovery_codes=codes)
    view = await _user_view(rt, person.user_id)
    enrolment = await pending_or_new_enrolment(rt, user_id=view.id, email=view.email)
    return render(request, "mfa.html", principal=None, enrolled=False,
                  enrolment=enrolment, errors=errors, recovery_codes=None, status=400)


def _login_form(request: Request, email: str, next_path: str, errors: FormErrors, *,
                status: int = 400) -> Response:
    return render(request, "login.html", next=safe_next(next_path), email=email,
                  errors=errors, status=status)


def _signed_in(request: Request, rt: Services, done: LoggedIn, next_path: str) -> Response:
    response = redirect(request, safe_next(next_path))
    session_cookie.keep(request, response, done.token, expires_at=done.expires_at,
                        now=rt.clock.now())
    csrf.remember(request, response, csrf.renew(request))  # a form from before is stale
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def _user_view(rt: Services, user_id: str) -> UserView:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.get(User, user_id)
    if user is None:
        raise Unauthorized("No such user.", code="user_not_found")
    return await user_view(rt, user)
