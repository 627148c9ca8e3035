"""FastAPI dependencies shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from tidings.accounts.auth import Principal, bearer_token
from tidings.db import SYSTEM
from tidings.operators.models import OperatorKey
from tidings.operators.service import check_operator_key
from tidings.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool,
    # a thread hop per request for a dictionary look-up.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_principal(
    rt: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    tidings_account: Annotated[str | None, Header(
        max_length=40, description="Act on this sub-account of the key's account.")] = None,
) -> Principal:
    return await rt.auth.authenticate(authorization, tidings_account)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_operator(
    rt: RuntimeDep, authorization: Annotated[str | None, Header()] = None,
) -> OperatorKey:
    raw = bearer_token(authorization)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return await check_operator_key(session, raw)


CurrentOperator = Annotated[OperatorKey, Depends(get_operator)]
