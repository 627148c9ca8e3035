"""Who calls a route of one's own login (``/v1/auth/…`` after logging in): the person
behind a session token, whether of an account or of the operator's staff.

These routes are about the person, not an account, so they take no API key, and they
are how a person gets past a gate (changing a password, enrolling a second factor).
``tests/api/test_route_permissions.py`` counts ``Person`` as a declaration.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tidings.accounts.auth import bearer_token
from tidings.storage.db import SYSTEM
from tidings.users.sessions import (
    MFA_REQUIRED,
    PASSWORD_CHANGE_REQUIRED,
    SessionPolicy,
    SessionUser,
    is_session_token,
    load_session,
)
from tidings.web.deps import API_KEY, RuntimeDep
from tidings.web.errors import Forbidden, InvalidRequest

_GATE_DETAIL = {
    PASSWORD_CHANGE_REQUIRED: "Change your password first (POST /v1/auth/password).",
    MFA_REQUIRED: "Enrol a second factor first (POST /v1/auth/mfa/totp).",
}


class Person:
    """The signed-in person; ``passes`` names the gates the route lets through."""

    def __init__(self, *, passes: frozenset[str]) -> None:
        self.passes = passes

    async def __call__(self, rt: RuntimeDep,
                       authorization: Annotated[str | None, Depends(API_KEY)]) -> SessionUser:
        raw = bearer_token(authorization)
        if not is_session_token(raw):
            raise InvalidRequest("This needs a person's session token (POST /v1/auth/login), "
                                 "not an API key.", code="not_a_session")
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            person = await load_session(session, token=raw, now=rt.clock.now(),
                                        policy=SessionPolicy.of(rt.settings))
        if person.gate is not None and person.gate not in self.passes:
            raise Forbidden(_GATE_DETAIL[person.gate], code=person.gate)
        return person


_EVERY_GATE = frozenset({PASSWORD_CHANGE_REQUIRED, MFA_REQUIRED})
# Reading one's session, logging out, changing one's password: whatever must come first.
SignedInPerson = Annotated[SessionUser, Depends(Person(passes=_EVERY_GATE))]
# Enrolling a second factor: after the password, if that had to change.
EnrollingPerson = Annotated[SessionUser, Depends(Person(passes=frozenset({MFA_REQUIRED})))]
