"""Who calls a route behind an API key: the key's account, or a sub-account of it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from tidings.accounts.auth import Principal
from tidings.web.deps import API_KEY, RuntimeDep


async def get_principal(
    rt: RuntimeDep,
    authorization: Annotated[str | None, Depends(API_KEY)],
    tidings_account: Annotated[str | None, Header(
        max_length=40, description="Act on this sub-account of the key's account.")] = None,
) -> Principal:
    return await rt.auth.authenticate(authorization, tidings_account)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
