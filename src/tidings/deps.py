"""FastAPI dependencies shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tidings.accounts.auth import Principal, bearer_token
from tidings.db import SYSTEM
from tidings.errors import InvalidRequest
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


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not declare, or one given twice, is a 400.

    Otherwise a misspelt filter (``?from=``, ``?state=``) would be ignored and the
    list would answer with every row, which looks like a valid, filtered answer.
    """
    route = request.scope.get("route")
    known = _query_names(route.dependant) if isinstance(route, APIRoute) else set()
    for name in request.query_params:
        if name not in known:
            takes = ", ".join(sorted(known)) or "no query parameters"
            raise InvalidRequest(f"Unknown query parameter {name[:60]!r}; this list takes "
                                 f"{takes}.", code="unknown_query_parameter",
                                 parameter=name[:60])
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidRequest(f"The query parameter {name!r} is given more than once.",
                                 code="repeated_query_parameter", parameter=name)


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


# Declared by every list route: ``@router.get("", dependencies=[KnownQueryOnly])``.
KnownQueryOnly = Depends(reject_unknown_query)
