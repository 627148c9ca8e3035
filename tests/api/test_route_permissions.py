"""Every route declares who may call it, and every role gets exactly the matrix.

The routes are read from the application itself (``app.ROUTERS``), so a route added
tomorrow is checked without touching this file: one that declares neither a
permission (``accounts.deps.Require``), nor the operator, nor the signed-in person
(``users.deps.Person``), nor that it is open to anyone fails here. Then each account
route is called as each role, and the answer is ``403 permission_denied`` exactly
where ``accounts/permissions.py`` says the role lacks the permission, and never
elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tests.conftest import Tenant
from tests.users.people import person, session_headers
from tidings.accounts.deps import Require
from tidings.accounts.permissions import Permission, Role, allows
from tidings.app import ROUTERS
from tidings.operators.deps import get_operator
from tidings.portal.deps import OperatorPage, PagePerson, PageRequire
from tidings.portal.routes import PAGE_ROUTERS
from tidings.runtime import Runtime
from tidings.users.deps import Person
from tidings.web.deps import open_to_anyone

OPERATOR, PUBLIC, PERSON = "operator", "anyone", "the signed-in person"


def routes() -> Iterator[APIRoute]:
    """The API's routes and the portal's pages."""
    for router in (*ROUTERS, *PAGE_ROUTERS):
        for route in router.routes:
            assert isinstance(route, APIRoute), route
            yield route


def declared(dependant: Dependant) -> list[Require | PageRequire | str]:
    """What a route's dependencies declare about its callers, in the order they run."""
    found: list[Require | PageRequire | str] = []
    for sub in dependant.dependencies:
        if isinstance(sub.call, Require | PageRequire):
            found.append(sub.call)
        elif sub.call is get_operator or isinstance(sub.call, OperatorPage):
            found.append(OPERATOR)
        elif sub.call is open_to_anyone:
            found.append(PUBLIC)
        elif isinstance(sub.call, Person | PagePerson):
            found.append(PERSON)
        found += declared(sub)
    return found


def account_routes() -> list[tuple[str, str, Require]]:
    """(method, path, requirement) of every route behind an account's credential."""
    out = []
    for route in routes():
        [declaration] = declared(route.dependant)
        if isinstance(declaration, Require):
            out += [(method, route.path, declaration) for method in sorted(route.methods)]
    return out


def test_every_route_declares_exactly_one_kind_of_caller() -> None:
    undeclared = []
    for route in routes():
        declarations = declared(route.dependant)
        if len(declarations) != 1:
            undeclared.append((sorted(route.methods), route.path, declarations))
    assert not undeclared, f"routes without one declared permission: {undeclared}"


def test_the_walk_sees_the_routes_it_must() -> None:
    checked = {(method, path): req.permission for method, path, req in account_routes()}
    assert checked[("POST", "/v1/messages")] is Permission.MESSAGES_SEND
    assert checked[("GET", "/v1/messages")] is Permission.MESSAGES_READ
    assert checked[("POST", "/v1/users")] is Permission.USERS_MANAGE
    assert checked[("GET", "/v1/audit-events")] is Permission.AUDIT_READ
    assert checked[("POST", "/v1/keys")] is Permission.KEYS_MANAGE
    assert checked[("POST", "/v1/consents")] is Permission.CONSENTS_MANAGE
    assert checked[("GET", "/v1/consents")] is Permission.CONSENTS_MANAGE
    assert checked[("POST", "/v1/consents/imports")] is Permission.CONSENTS_MANAGE
    assert len(checked) >= 25


def test_a_route_without_a_declaration_is_caught() -> None:
    from fastapi import APIRouter

    stray = APIRouter()

    @stray.get("/v1/stray")
    async def nothing_declared() -> None:
        return None

    [route] = stray.routes
    assert isinstance(route, APIRoute)
    assert declared(route.dependant) == []


def concrete(path: str) -> str:
    """A path with each parameter filled in with an id that exists nowhere."""
    return re.sub(r"\{[^}]+\}", "zz_nothing", path)


async def call(client: httpx.AsyncClient, method: str, path: str,
               headers: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
    return await client.request(method, concrete(path), headers=headers, json=body)


def denied(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    return bool(response.json().get("code") == "permission_denied")


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_is_refused_exactly_what_the_matrix_refuses(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: Role) -> None:
    headers = await session_headers(rt, await person(rt, acme.id, role.value))
    wrong = []
    for method, path, requirement in account_routes():
        response = await call(client, method, path, headers)
        expected = requirement.permission is not None and not allows(
            role, requirement.permission)
        if denied(response) != expected:
            wrong.append((method, path, response.status_code, response.text[:120]))
    assert not wrong, f"{role}: answers that break the matrix: {wrong}"


async def test_a_key_with_one_scope_gets_only_that(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    made = await client.post("/v1/keys", headers=acme.headers,
                             json={"name": "reader", "scopes": ["messages:read"]})
    assert made.status_code == 201, made.text
    assert made.json()["scopes"] == ["messages:read"]
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    for method, path, requirement in account_routes():
        response = await call(client, method, path, reader)
        expected = requirement.permission not in (None, Permission.MESSAGES_READ)
        assert denied(response) == expected, (method, path, response.text)
