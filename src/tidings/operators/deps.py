"""Who calls an operator route: an operator key, or a member of the operator's staff
logged in with a second factor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from tidings.accounts.auth import bearer_token
from tidings.audit.service import Actor
from tidings.operators.service import check_operator_key
from tidings.storage.db import SYSTEM
from tidings.users.sessions import SessionPolicy, is_session_token, load_session
from tidings.web.deps import OPERATOR_KEY, RuntimeDep
from tidings.web.errors import Forbidden


@dataclass(frozen=True)
class Operator:
    """An operator key (``opk_…``) or a staff user (``usr_…``)."""

    id: str

    @property
    def actor(self) -> Actor:
        return Actor("operator", self.id)


async def get_operator(
    rt: RuntimeDep, authorization: Annotated[str | None, Depends(OPERATOR_KEY)],
) -> Operator:
    raw = bearer_token(authorization)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        if not is_session_token(raw):
            return Operator((await check_operator_key(session, raw)).id)
        person = await load_session(session, token=raw, now=rt.clock.now(),
                                    policy=SessionPolicy.of(rt.settings))
    if person.account_id is not None:
        raise Forbidden("This is for the operator's staff.", code="not_operator_staff")
    if person.gate is not None:  # staff always need a second factor
        raise Forbidden("Enrol a second factor and change a temporary password first.",
                        code=person.gate)
    return Operator(person.user_id)


CurrentOperator = Annotated[Operator, Depends(get_operator)]
