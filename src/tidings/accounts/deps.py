"""Who calls a route behind an API key: the key's account, or a sub-account of it; each
call charged to the key's and the account's rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Response

from tidings.accounts.auth import Principal
from tidings.web.deps import API_KEY, RuntimeDep
from tidings.web.ratelimits import charge_once


async def get_principal(
    rt: RuntimeDep,
    request: Request,
    response: Response,
    authorization: Annotated[str | None, Depends(API_KEY)],
    tidings_account: Annotated[str | None, Header(
        max_length=40, description="Act on this sub-account of the key's account.")] = None,
) -> Principal:
    principal = await rt.auth.authenticate(authorization, tidings_account)
    actor = principal.actor
    quota = await charge_once(rt.rate_limits, request.scope, account_id=principal.account_id,
                              credential=(actor.type, actor.id))
    if quota is not None:
        response.headers.update(quota.headers())
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
