"""HTTP endpoints of sender numbers: claims (with a one-time code), the account's
numbers, and the operator's assignment."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks

from tidings.accounts.deps import MayManageNumbers
from tidings.accounts.service import get_account
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.numbers.claims import do_start_claim, do_verify_claim
from tidings.numbers.codes import send_code_quietly
from tidings.numbers.models import NUMBER_FIELD, PhoneNumber
from tidings.numbers.schemas import (
    AssignNumber,
    ClaimNumber,
    ClaimOut,
    NumberOut,
    UpdateNumber,
    VerifyClaim,
)
from tidings.numbers.service import (
    configured_number,
    do_assign_number,
    do_release_number,
    do_set_webhook_url,
    list_numbers,
    normalize_number,
    number_index,
    owner_of,
)
from tidings.operators.deps import CurrentOperator
from tidings.routing.service import whatsapp_numbers
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.web.deps import (
    PROBLEMS_OF_API_KEY_ROUTES,
    PROBLEMS_OF_OPERATOR_ROUTES,
    KnownQueryOnly,
    RuntimeDep,
)
from tidings.web.errors import InvalidRequest, problem_responses
from tidings.webhooks.destinations import check_webhook_url

router = APIRouter(prefix="/v1/numbers", tags=["numbers"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)
operator_router = APIRouter(prefix="/v1/operator/numbers", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)


def number_out(keys: TenantKeys, row: PhoneNumber) -> NumberOut:
    return NumberOut(id=row.id, number=keys.decrypt(row.number_enc, field=NUMBER_FIELD),
                     account_id=row.tenant_id, webhook_url=row.webhook_url,
                     created_at=row.created_at)


async def parse_number(rt: Services, raw: str) -> str:
    """``normalize_number``, but a number configured on a WhatsApp connector is taken
    whatever libphonenumber thinks of it: the connector's phone-number id is its proof."""
    try:
        return normalize_number(raw)
    except InvalidRequest:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            number = configured_number(raw, await whatsapp_numbers(session))
        if number is None:
            raise
        return number


async def holder_of(rt: Services, number: str) -> str | None:
    """The account that holds ``number``, looked up across tenants."""
    index = number_index(await rt.vault.platform_keys(), number)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        owner = await owner_of(session, index=index)
    return owner.tenant if owner else None


@router.post("", status_code=202, response_model=ClaimOut, summary="Claim a number",
             operation_id="claim_number", responses=problem_responses(413))
async def claim_number(body: ClaimNumber, rt: RuntimeDep, principal: MayManageNumbers,
                       background: BackgroundTasks) -> ClaimOut:
    """Sends a one-time code to the number (SMS) or address (email); verify it with
    ``POST /v1/numbers/claims/{id}/verify`` to own the number."""
    number = await parse_number(rt, body.number)
    holder = await holder_of(rt, number)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        started = await do_start_claim(session, keys=keys, number=number, holder=holder,
                                       actor=principal.actor, now=rt.clock.now())
    if started.code is not None:
        # After the answer, so that a claim of a held number (no code) answers as fast.
        background.add_task(send_code_quietly, rt, number=number, code=started.code)
    return ClaimOut(id=started.claim.id, number=number, status="pending",
                    expires_at=started.claim.expires_at)


@router.post("/claims/{claim_id}/verify", status_code=201, response_model=NumberOut,
             summary="Complete a claim with its code", operation_id="verify_number_claim",
             responses=problem_responses(409, 413, 429))
async def verify_claim(claim_id: str, body: VerifyClaim, rt: RuntimeDep,
                       principal: MayManageNumbers) -> NumberOut:
    keys, platform = await rt.vault.keys_for(principal.tenant), await rt.vault.platform_keys()
    async with rt.db.transaction(tenant=principal.tenant) as session:
        outcome = await do_verify_claim(session, keys=keys, platform=platform,
                                        claim_id=claim_id, code=body.code,
                                        actor=principal.actor, now=rt.clock.now())
    if not isinstance(outcome, PhoneNumber):
        raise outcome  # after the commit: the wrong code counts as an attempt
    return number_out(keys, outcome)


@router.get("", response_model=list[NumberOut], summary="Numbers of the account",
            dependencies=[KnownQueryOnly], operation_id="list_numbers")
async def list_endpoint(rt: RuntimeDep, principal: MayManageNumbers) -> list[NumberOut]:
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        return [number_out(keys, n) for n in await list_numbers(session,
                                                                 tenant=principal.tenant)]


@router.patch("/{number_id}", response_model=NumberOut, summary="Set a number's webhook URL",
              operation_id="update_number", responses=problem_responses(413))
async def update_number(number_id: str, body: UpdateNumber, rt: RuntimeDep,
                        principal: MayManageNumbers) -> NumberOut:
    check_webhook_url(body.webhook_url, field="webhook_url",
                      allow_private=rt.settings.webhook_allow_private)
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        row = await do_set_webhook_url(session, tenant=principal.tenant, number_id=number_id,
                                       url=body.webhook_url, actor=principal.actor,
                                       now=rt.clock.now())
        return number_out(keys, row)


@router.delete("/{number_id}", status_code=204, summary="Release a number",
               operation_id="release_number")
async def release_number(number_id: str, rt: RuntimeDep, principal: MayManageNumbers) -> None:
    async with rt.db.transaction(tenant=principal.tenant) as session:
        await do_release_number(session, tenant=principal.tenant, number_id=number_id,
                                actor=principal.actor, now=rt.clock.now())


async def assign_number(rt: Services, *, account_id: str, raw_number: str,
                        actor: Actor) -> NumberOut:
    """The operator gives a number to an account, without a claim (CLI and API)."""
    number = await parse_number(rt, raw_number)
    platform = await rt.vault.platform_keys()
    async with rt.db.transaction(tenant=account_id) as session:
        await get_account(session, account_id=account_id)  # before it gets keys
        keys = await rt.vault.keys_for(account_id)
        row = await do_assign_number(session, keys=keys, platform=platform, number=number,
                                     actor=actor, now=rt.clock.now())
        return number_out(keys, row)


@operator_router.post("", status_code=201, response_model=NumberOut,
                      summary="Assign a number to an account", operation_id="assign_number",
                      responses=problem_responses(404, 409, 413))
async def operator_assign(body: AssignNumber, rt: RuntimeDep,
                          operator: CurrentOperator) -> NumberOut:
    return await assign_number(rt, account_id=body.account_id, raw_number=body.number,
                               actor=Actor("operator", operator.id))
