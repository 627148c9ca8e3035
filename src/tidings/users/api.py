"""HTTP endpoints of logging in (``/v1/auth``) and of an account's users (``/v1/users``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tidings.accounts.auth import Principal
from tidings.accounts.deps import MayManageUsers
from tidings.accounts.permissions import Role, permissions_of
from tidings.accounts.rights import ensure_may_manage_users
from tidings.core.services import Services
from tidings.storage.db import SYSTEM
from tidings.users.credentials import change_password
from tidings.users.deps import EnrollingPerson, SignedInPerson
from tidings.users.login import LoggedIn, complete_second_factor, failures_counted, log_in
from tidings.users.mfa import begin_enrolment, confirm_enrolment
from tidings.users.models import User
from tidings.users.password_reset import complete_reset, request_reset
from tidings.users.schemas import (
    AskReset,
    ChangePassword,
    ConfirmReset,
    ConfirmTotp,
    InviteUser,
    Login,
    LoginOut,
    NewUserOut,
    RecoveryCodesOut,
    ResetAsked,
    SecondFactor,
    SecondFactorOut,
    SessionOut,
    TotpEnrolmentOut,
    UpdateUser,
    UserOut,
)
from tidings.users.service import (
    UserView,
    check_role,
    create_user,
    get_user,
    list_users,
    update_user,
    user_view,
)
from tidings.users.sessions import SessionUser, end_session
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep, public
from tidings.web.errors import Forbidden, InvalidRequest, NotFound, problem_responses

auth_router = APIRouter(prefix="/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/v1/users", tags=["users"],
                         responses=PROBLEMS_OF_API_KEY_ROUTES)


def user_out(view: UserView) -> UserOut:
    return UserOut(id=view.id, email=view.email, role=view.role, status=view.status,
                   mfa_enabled=view.mfa_enabled, must_change_password=view.must_change_password,
                   created_at=view.created_at)


async def _logged_in(rt: Services, done: LoggedIn) -> LoginOut:
    return LoginOut(token=done.token, expires_at=done.expires_at,
                    user=user_out(await user_view(rt, done.user)))


@auth_router.post("/login", response_model=LoginOut | SecondFactorOut, summary="Log in",
                  operation_id="log_in", dependencies=[public],
                  responses=problem_responses(400, 401, 429))
async def login(body: Login, rt: RuntimeDep, request: Request) -> LoginOut | SecondFactorOut:
    async with failures_counted(rt, _address(request)):
        outcome = await log_in(rt, email=body.email, password=body.password)
    if isinstance(outcome, LoggedIn):
        return await _logged_in(rt, outcome)
    return SecondFactorOut(challenge=outcome.challenge)


@auth_router.post("/mfa", response_model=LoginOut, summary="Log in: the second factor",
                  operation_id="log_in_second_factor", dependencies=[public],
                  responses=problem_responses(400, 401, 429))
async def second_factor(body: SecondFactor, rt: RuntimeDep, request: Request) -> LoginOut:
    async with failures_counted(rt, _address(request)):
        done = await complete_second_factor(rt, challenge=body.challenge, code=body.code)
    return await _logged_in(rt, done)


@auth_router.post("/password-reset", status_code=202, response_model=ResetAsked,
                  summary="Forgot the password: a reset token by mail",
                  operation_id="ask_password_reset", dependencies=[public],
                  responses=problem_responses(400, 429))
async def ask_reset(body: AskReset, rt: RuntimeDep, request: Request) -> ResetAsked:
    address = request.client.host if request.client else ""
    await rt.rate_limits.refuse_blocked_login(address)
    # Each request counts as a failure of its address: nobody fills a mailbox from one.
    await rt.rate_limits.note_failed_login(address)
    await request_reset(rt, email=body.email)
    return ResetAsked()


@auth_router.post("/password-reset/confirm", status_code=204,
                  summary="Forgot the password: the new one, with the mailed token",
                  operation_id="confirm_password_reset", dependencies=[public],
                  responses=problem_responses(400, 422, 429))
async def confirm_reset(body: ConfirmReset, rt: RuntimeDep, request: Request) -> Response:
    address = request.client.host if request.client else ""
    await rt.rate_limits.refuse_blocked_login(address)
    try:
        await complete_reset(rt, token=body.token, new_password=body.new_password)
    except InvalidRequest:
        await rt.rate_limits.note_failed_login(address)
        raise
    rt.auth.invalidate()
    return Response(status_code=204)


@auth_router.post("/logout", status_code=204, summary="End this session",
                  operation_id="log_out", responses=PROBLEMS_OF_API_KEY_ROUTES)
async def logout(rt: RuntimeDep, person: SignedInPerson) -> Response:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await end_session(session, session_id=person.session_id, now=rt.clock.now())
    rt.auth.invalidate()
    return Response(status_code=204)


@auth_router.get("/session", response_model=SessionOut, summary="Who is logged in",
                 operation_id="get_session", responses=PROBLEMS_OF_API_KEY_ROUTES)
async def read_session(rt: RuntimeDep, person: SignedInPerson) -> SessionOut:
    view = await _view(rt, person)
    permissions = sorted(permissions_of(Role(person.role))) if person.role in set(Role) else []
    return SessionOut(user=user_out(view), account_id=person.account_id,
                      permissions=permissions, gate=person.gate)


@auth_router.post("/password", status_code=204, summary="Change your password",
                  operation_id="change_password",
                  responses={**PROBLEMS_OF_API_KEY_ROUTES, **problem_responses(422)})
async def password(body: ChangePassword, rt: RuntimeDep,
                   person: SignedInPerson) -> Response:
    await change_password(rt, user_id=person.user_id, session_id=person.session_id,
                          current=body.current_password, new=body.new_password)
    rt.auth.invalidate()
    return Response(status_code=204)


@auth_router.post("/mfa/totp", response_model=TotpEnrolmentOut,
                  summary="Enrol an authenticator app: its secret",
                  operation_id="begin_totp_enrolment",
                  responses={**PROBLEMS_OF_API_KEY_ROUTES, **problem_responses(409)})
async def begin_totp(rt: RuntimeDep, person: EnrollingPerson) -> TotpEnrolmentOut:
    view = await _view(rt, person)
    made = await begin_enrolment(rt, user_id=view.id, email=view.email)
    return TotpEnrolmentOut(otpauth_uri=made.otpauth_uri, secret=made.secret,
                            qr_svg=made.qr_svg)


@auth_router.post("/mfa/totp/confirm", response_model=RecoveryCodesOut,
                  summary="Enrol an authenticator app: its first code",
                  operation_id="confirm_totp_enrolment",
                  responses={**PROBLEMS_OF_API_KEY_ROUTES, **problem_responses(409)})
async def confirm_totp(body: ConfirmTotp, rt: RuntimeDep,
                       person: EnrollingPerson) -> RecoveryCodesOut:
    codes = await confirm_enrolment(rt, user_id=person.user_id, code=body.code)
    rt.auth.invalidate()
    return RecoveryCodesOut(recovery_codes=codes)


@users_router.post("", status_code=201, response_model=NewUserOut, summary="Invite a user",
                   operation_id="create_user", responses=problem_responses(409))
async def invite(body: InviteUser, rt: RuntimeDep, principal: MayManageUsers) -> NewUserOut:
    ensure_may_manage_users((await rt.account_rights.effective(principal.tenant)).rights)
    _check_grantable(principal, body.role)
    made = await create_user(rt, account_id=principal.tenant, email=body.email,
                             role=body.role, actor=principal.actor)
    return NewUserOut(id=made.id, email=made.email, role=made.role,
                      temporary_password=made.temporary_password, expires_at=made.expires_at)


@users_router.get("", response_model=list[UserOut], summary="Users of the account",
                  operation_id="list_users", dependencies=[KnownQueryOnly])
async def list_endpoint(rt: RuntimeDep, principal: MayManageUsers) -> list[UserOut]:
    return [user_out(v) for v in await list_users(rt, account_id=principal.tenant)]


@users_router.patch("/{user_id}", response_model=UserOut,
                    summary="Change a user's role, or disable or enable it",
                    operation_id="update_user", responses=problem_responses(409))
async def update(user_id: str, body: UpdateUser, rt: RuntimeDep,
                 principal: MayManageUsers) -> UserOut:
    ensure_may_manage_users((await rt.account_rights.effective(principal.tenant)).rights)
    current = await get_user(rt, account_id=principal.tenant, user_id=user_id[:60])
    _check_grantable(principal, current.role)
    if body.role is not None:
        _check_grantable(principal, body.role)
    if current.id == principal.user_id:
        raise Forbidden("Another user must change your own role or status.",
                        code="cannot_change_self")
    view = await update_user(rt, account_id=principal.tenant, user_id=current.id,
                             role=body.role, disabled=body.disabled, actor=principal.actor)
    rt.auth.invalidate()
    return user_out(view)


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def _check_grantable(principal: Principal, role: str) -> None:
    """Nobody hands out, or acts on a holder of, more permissions than their own."""
    extra = permissions_of(check_role(role)) - principal.permissions
    if extra:
        raise Forbidden(f"The role {role!r} has permissions you do not have: "
                        f"{', '.join(sorted(extra))}.", code="role_too_wide")


async def _view(rt: Services, person: SessionUser) -> UserView:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.get(User, person.user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return await user_view(rt, user)

