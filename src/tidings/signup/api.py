"""HTTP endpoints: signing up, the account's verification, verified numbers, and the
operator's decisions."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, BackgroundTasks, Response

from tidings.accounts.deps import MayManageNumbers, MayManageUsers
from tidings.accounts.models import AccountStatus
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.numbers.codes import send_code_quietly
from tidings.numbers.service import normalize_number
from tidings.operators.deps import CurrentOperator
from tidings.signup import verified_numbers
from tidings.signup.models import VERIFIED_NUMBER_FIELD, VerifiedNumber
from tidings.signup.schemas import (
    ConfirmIn,
    ConfirmNumberIn,
    ConfirmOut,
    RejectAccountIn,
    SignUpIn,
    SignUpOut,
    VerificationDetailsOut,
    VerificationIn,
    VerificationOut,
    VerifiedNumberIn,
    VerifiedNumberOut,
    VerifyAccountIn,
)
from tidings.signup.service import (
    SignUp,
    check_country,
    confirm_address,
    sign_up,
)
from tidings.signup.verification import (
    Details,
    Outcome,
    VerificationView,
    account_verification,
    check_outcome,
    decide,
    do_submit_details,
    pending_verifications,
)
from tidings.storage.vault import TenantKeys
from tidings.users.service import check_email
from tidings.web.deps import (
    PROBLEMS_OF_API_KEY_ROUTES,
    PROBLEMS_OF_OPERATOR_ROUTES,
    KnownQueryOnly,
    RuntimeDep,
    public,
)
from tidings.web.errors import Forbidden, InvalidRequest, problem_responses

signup_router = APIRouter(prefix="/v1/signup", tags=["signup"])
router = APIRouter(prefix="/v1", tags=["verification"], responses=PROBLEMS_OF_API_KEY_ROUTES)
operator_router = APIRouter(prefix="/v1/operator", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)
SIGNED_UP = ("If the address can be used, a mail is on its way to it: follow its link to "
             "confirm the address, then log in.")


# --- signing up (no credential) ---------------------------------------------------------

@signup_router.post("", status_code=202, response_model=SignUpOut, summary="Sign up",
                    operation_id="sign_up", dependencies=[public],
                    responses=problem_responses(400, 403, 413, 422))
async def sign_up_endpoint(body: SignUpIn, rt: RuntimeDep) -> SignUpOut:
    """Creates a pending account and its owner, and mails a link to confirm the address.
    The answer is the same for an address that has an account already."""
    await sign_up(rt, SignUp(body.company, body.email, body.password, body.country))
    return SignUpOut(detail=SIGNED_UP)


@signup_router.post("/confirm", response_model=ConfirmOut, summary="Confirm the address",
                    operation_id="confirm_signup_address", dependencies=[public],
                    responses=problem_responses(400, 413))
async def confirm_endpoint(body: ConfirmIn, rt: RuntimeDep) -> ConfirmOut:
    await confirm_address(rt, body.token)
    return ConfirmOut(email_confirmed=True)


# --- the account's verification ----------------------------------------------------------

def verification_out(found: VerificationView) -> VerificationOut:
    details = (VerificationDetailsOut(**asdict(found.details)) if found.details is not None
               else None)
    return VerificationOut(**{**asdict(found), "details": details})


@router.get("/account/verification", response_model=VerificationOut,
            summary="The account's verification", operation_id="get_account_verification")
async def read_verification(rt: RuntimeDep, principal: MayManageUsers) -> VerificationOut:
    return verification_out(await account_verification(rt, account_id=principal.tenant))


@router.put("/account/verification", response_model=VerificationOut,
            summary="Tell who the company is, for the operator to verify",
            operation_id="submit_account_verification", responses=problem_responses(409, 413))
async def submit_verification(body: VerificationIn, rt: RuntimeDep,
                              principal: MayManageUsers) -> VerificationOut:
    details = Details(body.legal_name.strip(), check_country(body.country),
                      body.registration_number.strip(), body.contact_name.strip(),
                      _contact_email(body.contact_email),
                      normalize_number(body.contact_phone) if body.contact_phone else None,
                      body.intended_use.strip())
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        await do_submit_details(session, keys=keys, details=details, actor=principal.actor,
                                now=rt.clock.now())
    return verification_out(await account_verification(rt, account_id=principal.tenant))


def _contact_email(raw: str) -> str:
    try:
        return check_email(raw)
    except InvalidRequest as error:  # the same error, named for this field
        raise InvalidRequest(error.detail, code=error.code,
                             parameter="contact_email") from None


# --- numbers a trial account may send to ------------------------------------------------

def number_out(keys: TenantKeys, row: VerifiedNumber) -> VerifiedNumberOut:
    verified = row.verified_at is not None
    return VerifiedNumberOut(id=row.id,
                             number=keys.decrypt(row.number_enc, field=VERIFIED_NUMBER_FIELD),
                             status="verified" if verified else "pending",
                             expires_at=None if verified else row.expires_at,
                             verified_at=row.verified_at, created_at=row.created_at)


@router.post("/verified-numbers", status_code=202, response_model=VerifiedNumberOut,
             summary="Verify a number a trial may send to: sends it a code",
             operation_id="start_number_verification",
             responses=problem_responses(409, 413, 429))
async def start_verified_number(body: VerifiedNumberIn, rt: RuntimeDep,
                                principal: MayManageNumbers,
                                background: BackgroundTasks) -> VerifiedNumberOut:
    if principal.account_status != AccountStatus.TRIAL:
        raise Forbidden("Only a trial account verifies the numbers it sends to.",
                        code="not_a_trial", account_status=principal.account_status)
    number = normalize_number(body.number)
    if "@" in number:
        raise Forbidden("A trial verifies phone numbers, not e-mail addresses.",
                        code="not_a_phone_number")
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        row, code = await verified_numbers.do_start(session, keys=keys, number=number,
                                                    actor=principal.actor, now=rt.clock.now())
    background.add_task(send_code_quietly, rt, number=number, code=code)
    return number_out(keys, row)


@router.post("/verified-numbers/{number_id}/confirm", response_model=VerifiedNumberOut,
             summary="Confirm a number with the code sent to it",
             operation_id="confirm_verified_number", responses=problem_responses(409, 413, 429))
async def confirm_verified_number(number_id: str, body: ConfirmNumberIn, rt: RuntimeDep,
                                  principal: MayManageNumbers) -> VerifiedNumberOut:
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        outcome = await verified_numbers.do_confirm(session, keys=keys, row_id=number_id,
                                                    code=body.code, actor=principal.actor,
                                                    now=rt.clock.now())
    if not isinstance(outcome, VerifiedNumber):
        raise outcome  # after the commit: the wrong code counts as an attempt
    return number_out(keys, outcome)


@router.get("/verified-numbers", response_model=list[VerifiedNumberOut],
            summary="Numbers the account verified, or is verifying",
            dependencies=[KnownQueryOnly], operation_id="list_verified_numbers")
async def list_verified_numbers(rt: RuntimeDep,
                                principal: MayManageNumbers) -> list[VerifiedNumberOut]:
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        rows = await verified_numbers.list_all(session, tenant=principal.tenant)
    return [number_out(keys, row) for row in rows]


@router.delete("/verified-numbers/{number_id}", status_code=204,
               summary="Forget a verified number", operation_id="delete_verified_number")
async def delete_verified_number(number_id: str, rt: RuntimeDep,
                                 principal: MayManageNumbers) -> Response:
    async with rt.db.transaction(tenant=principal.tenant) as session:
        await verified_numbers.do_delete(session, tenant=principal.tenant, row_id=number_id,
                                         actor=principal.actor, now=rt.clock.now())
    return Response(status_code=204)


# --- the operator's decisions -----------------------------------------------------------

async def verify_account(rt: Services, *, account_id: str, outcome: str, note: str | None,
                         actor: Actor) -> VerificationOut:
    """Shared by the operator's route and ``tidings accounts verify|reject``."""
    return verification_out(await decide(rt, account_id=account_id,
                                         outcome=check_outcome(outcome), note=note,
                                         actor=actor))


@operator_router.get("/verifications", response_model=list[VerificationOut],
                     summary="Verifications that wait for a decision",
                     dependencies=[KnownQueryOnly], operation_id="list_pending_verifications")
async def list_pending(rt: RuntimeDep, operator: CurrentOperator) -> list[VerificationOut]:
    return [verification_out(found) for found in await pending_verifications(rt)]


@operator_router.post("/accounts/{account_id}/verify", response_model=VerificationOut,
                      summary="Verify an account: a trial, or active",
                      operation_id="verify_account", responses=problem_responses(404, 409, 413))
async def verify_endpoint(account_id: str, body: VerifyAccountIn, rt: RuntimeDep,
                          operator: CurrentOperator) -> VerificationOut:
    return await verify_account(rt, account_id=account_id, outcome=body.outcome,
                                note=body.note, actor=Actor("operator", operator.id))


@operator_router.post("/accounts/{account_id}/reject", response_model=VerificationOut,
                      summary="Reject an account's verification, with the reason",
                      operation_id="reject_account", responses=problem_responses(404, 409, 413))
async def reject_endpoint(account_id: str, body: RejectAccountIn, rt: RuntimeDep,
                          operator: CurrentOperator) -> VerificationOut:
    return await verify_account(rt, account_id=account_id, outcome=Outcome.REJECTED.value,
                                note=body.reason, actor=Actor("operator", operator.id))
