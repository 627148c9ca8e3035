"""Break-glass over HTTP: the operator opens a grant and reads a message under it; the
account lists the grants made on it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tidings.accounts.auth import ACCOUNT_ID
from tidings.accounts.deps import MayReadAudit
from tidings.accounts.models import Account
from tidings.accounts.permissions import Permission
from tidings.core.services import Services
from tidings.messaging.api import MESSAGE_ID
from tidings.messaging.schemas import MessageOut
from tidings.messaging.service import cipher_of, get_events, get_message, message_out
from tidings.messaging.views import as_seen_by
from tidings.operators.break_glass import (
    MAX_MINUTES,
    GrantView,
    active_grant,
    list_grants,
    open_grant,
    record_read,
)
from tidings.operators.deps import CurrentOperator
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, PROBLEMS_OF_OPERATOR_ROUTES, RuntimeDep
from tidings.web.errors import NotFound, problem_responses

operator_router = APIRouter(prefix="/v1/operator/accounts", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)
account_router = APIRouter(prefix="/v1/account", tags=["accounts"],
                           responses=PROBLEMS_OF_API_KEY_ROUTES)
# What an operator sees of a message without a grant: what support sees.
WITHOUT_GRANT = frozenset({Permission.MESSAGES_READ})


class OpenGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500,
                        description="Why; the account reads it.")
    minutes: int = Field(ge=1, le=MAX_MINUTES)


class GrantOut(BaseModel):
    id: str
    account_id: str
    operator: str
    reason: str
    created_at: datetime
    expires_at: datetime


def grant_out(view: GrantView) -> GrantOut:
    return GrantOut(id=view.id, account_id=view.account_id, operator=view.operator,
                    reason=view.reason, created_at=view.created_at, expires_at=view.expires_at)


@operator_router.post("/{account_id}/break-glass", status_code=201, response_model=GrantOut,
                      summary="Open time-boxed access to an account's message content",
                      operation_id="open_break_glass", responses=problem_responses(404))
async def open_endpoint(account_id: str, body: OpenGrant, rt: RuntimeDep,
                        operator: CurrentOperator) -> GrantOut:
    keys = await _keys_of_known_account(rt, account_id)
    async with rt.db.transaction(tenant=account_id) as session:
        view = await open_grant(session, keys=keys, account_id=account_id,
                                actor=operator.actor, reason=body.reason,
                                minutes=body.minutes, now=rt.clock.now())
    return grant_out(view)


@operator_router.get("/{account_id}/messages/{message_id}", response_model=MessageOut,
                     summary="A client's message: content only under a break-glass grant",
                     operation_id="operator_read_message", responses=problem_responses(404))
async def read_endpoint(account_id: str, message_id: str, rt: RuntimeDep,
                        operator: CurrentOperator) -> MessageOut:
    if not MESSAGE_ID.match(message_id):
        raise NotFound(f"No message {message_id[:60]!r}.", code="message_not_found")
    keys = await _keys_of_known_account(rt, account_id)
    now = rt.clock.now()
    async with rt.db.transaction(tenant=account_id) as session:
        message = await get_message(session, tenant=account_id, message_id=message_id)
        events = await get_events(session, tenant=account_id, message_id=message_id)
        grant = await active_grant(session, account_id=message.tenant_id,
                                   operator_id=operator.id, now=now)
        if grant is not None:
            await record_read(session, grant=grant, actor=operator.actor,
                              message_id=message.id, now=now)
    out = message_out(message, await cipher_of(keys, message), events)
    return out if grant is not None else as_seen_by(out, WITHOUT_GRANT)


@account_router.get("/break-glass", response_model=list[GrantOut],
                    summary="The operator's access grants to this account's content",
                    operation_id="list_break_glass_grants")
async def list_endpoint(rt: RuntimeDep, principal: MayReadAudit) -> list[GrantOut]:
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        return [grant_out(v) for v in await list_grants(session, keys=keys,
                                                        account_id=principal.tenant)]


async def _keys_of_known_account(rt: Services, account_id: str) -> TenantKeys:
    """The account's keys; ``NotFound`` before any key is made for an unknown account."""
    if ACCOUNT_ID.fullmatch(account_id) is None:
        raise NotFound(f"No account {account_id[:60]!r}.", code="account_not_found")
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        if await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id!r}.", code="account_not_found")
    return await rt.vault.keys_for(account_id)
