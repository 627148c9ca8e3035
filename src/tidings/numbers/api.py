"""HTTP endpoints of sender numbers."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tidings.deps import PROBLEMS_OF_API_KEY_ROUTES, CurrentPrincipal, KnownQueryOnly, RuntimeDep
from tidings.errors import InvalidRequest, problem_responses
from tidings.messaging.addresses import AddressError, normalize_e164, normalize_email
from tidings.numbers.models import PhoneNumber
from tidings.numbers.service import do_claim_number, do_release_number, list_numbers

router = APIRouter(prefix="/v1/numbers", tags=["numbers"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)


class ClaimNumber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=254,
                        description="A number in E.164, or an email address for inbound mail.")


class NumberOut(BaseModel):
    id: str
    number: str
    account_id: str
    created_at: datetime


def number_out(row: PhoneNumber) -> NumberOut:
    return NumberOut(id=row.id, number=row.number, account_id=row.tenant_id,
                     created_at=row.created_at)


@router.post("", status_code=201, response_model=NumberOut, summary="Claim a sender number",
             operation_id="claim_number", responses=problem_responses(409, 413))
async def claim_number(body: ClaimNumber, rt: RuntimeDep,
                       principal: CurrentPrincipal) -> NumberOut:
    try:
        number = (normalize_email if "@" in body.number else normalize_e164)(body.number)
    except AddressError as exc:
        raise InvalidRequest(str(exc), code=exc.code) from None
    async with rt.db.transaction(tenant=principal.tenant) as session:
        row = await do_claim_number(session, tenant=principal.tenant, number=number,
                                    actor=principal.actor, now=rt.clock.now())
    return number_out(row)


@router.get("", response_model=list[NumberOut], summary="Numbers of the account",
            dependencies=[KnownQueryOnly], operation_id="list_numbers")
async def list_endpoint(rt: RuntimeDep, principal: CurrentPrincipal) -> list[NumberOut]:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        return [number_out(n) for n in await list_numbers(session, tenant=principal.tenant)]


@router.delete("/{number_id}", status_code=204, summary="Release a number",
               operation_id="release_number")
async def release_number(number_id: str, rt: RuntimeDep, principal: CurrentPrincipal) -> None:
    async with rt.db.transaction(tenant=principal.tenant) as session:
        await do_release_number(session, tenant=principal.tenant, number_id=number_id[:40],
                                actor=principal.actor, now=rt.clock.now())
