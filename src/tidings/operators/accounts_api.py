"""The operator's view of clients' accounts: ``GET /v1/operator/accounts`` and
``POST /v1/operator/accounts/{id}/status`` (suspend, reactivate, terminate, with the
reason the account is shown)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from tidings.accounts.api import account_out
from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.schemas import AccountOut
from tidings.operators.account_status import set_account_status
from tidings.operators.deps import CurrentOperator
from tidings.storage.db import SYSTEM
from tidings.web.deps import PROBLEMS_OF_OPERATOR_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import problem_responses

router = APIRouter(prefix="/v1/operator/accounts", tags=["operator"],
                   responses=PROBLEMS_OF_OPERATOR_ROUTES)


class SetStatusIn(BaseModel):
    status: AccountStatus
    reason: str | None = Field(default=None, min_length=1, max_length=500,
                               description="Why; kept encrypted, shown to the account.")


class StatusSetOut(BaseModel):
    account_id: str
    status: AccountStatus
    owners_notified: int = Field(description="Owners told of a suspension by mail.")


@router.get("", response_model=list[AccountOut], summary="Clients' accounts, newest first",
            operation_id="list_all_accounts", dependencies=[KnownQueryOnly])
async def list_all(rt: RuntimeDep, _operator: CurrentOperator,
                   status: Annotated[AccountStatus | None, Query()] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AccountOut]:
    query = select(Account).order_by(Account.created_at.desc(), Account.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Account.status == status.value)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return [account_out(a) for a in (await session.scalars(query)).all()]


@router.post("/{account_id}/status", response_model=StatusSetOut,
             summary="Suspend, reactivate or terminate an account",
             operation_id="set_account_status", responses=problem_responses(404, 409, 413))
async def set_status(account_id: str, body: SetStatusIn, rt: RuntimeDep,
                     operator: CurrentOperator) -> StatusSetOut:
    done = await set_account_status(rt, account_id=account_id[:40], status=body.status,
                                    reason=body.reason, actor=operator.actor)
    return StatusSetOut(account_id=done.account_id, status=AccountStatus(done.status),
                        owners_notified=done.owners_notified)
