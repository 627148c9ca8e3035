"""Who calls an operator route: an operator key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tidings.accounts.auth import bearer_token
from tidings.operators.models import OperatorKey
from tidings.operators.service import check_operator_key
from tidings.storage.db import SYSTEM
from tidings.web.deps import OPERATOR_KEY, RuntimeDep


async def get_operator(
    rt: RuntimeDep, authorization: Annotated[str | None, Depends(OPERATOR_KEY)],
) -> OperatorKey:
    raw = bearer_token(authorization)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return await check_operator_key(session, raw)


CurrentOperator = Annotated[OperatorKey, Depends(get_operator)]
