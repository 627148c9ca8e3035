"""Every page checks the permission its API route checks: each page is opened (or its
form sent) as each role, and refused exactly where ``accounts/permissions.py`` says.

The pages are read from the application (``portal.routes.PAGE_ROUTERS``), so a page
added tomorrow is checked here without touching this file.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_route_permissions import concrete, declared, routes
from tests.conftest import Tenant
from tests.portal.pages import page_error, signed_in
from tests.users.people import person
from tidings.accounts.permissions import Permission, Role, allows
from tidings.portal.deps import PageRequire
from tidings.runtime import Runtime


def page_routes() -> list[tuple[str, str, PageRequire]]:
    out = []
    for route in routes():
        [declaration] = declared(route.dependant)
        if isinstance(declaration, PageRequire):
            out += [(method, route.path, declaration) for method in sorted(route.methods)]
    return out


def test_the_walk_sees_the_pages_it_must() -> None:
    pages = {(method, path): req.permission for method, path, req in page_routes()}
    assert pages[("GET", "/portal/dashboard")] is Permission.REPORTS_READ
    assert pages[("GET", "/portal/messages")] is Permission.MESSAGES_READ
    assert pages[("POST", "/portal/send")] is Permission.MESSAGES_SEND
    assert pages[("GET", "/portal/privacy")] is Permission.PRIVACY_MANAGE
    assert pages[("POST", "/portal/privacy/requests/{request_id}/extend")] \
        is Permission.PRIVACY_MANAGE
    # Any member reads the sub-processors; objecting is privacy:manage's, as in the API.
    assert pages[("GET", "/portal/privacy/subprocessors")] is None
    assert pages[("POST", "/portal/privacy/subprocessors/{sub_id}/objection")] \
        is Permission.PRIVACY_MANAGE
    assert pages[("GET", "/portal/consents")] is Permission.CONSENTS_MANAGE
    assert pages[("POST", "/portal/consents/imports")] is Permission.CONSENTS_MANAGE


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_is_refused_exactly_the_pages_the_matrix_refuses(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: Role) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, role.value))
    wrong = []
    for method, path, requirement in page_routes():
        data = {"_csrf": token} if method == "POST" else None
        response = await client.request(method, concrete(path), data=data)
        refused = response.status_code == 403 and page_error(response) == "permission_denied"
        expected = requirement.permission is not None and not allows(role,
                                                                     requirement.permission)
        if refused != expected:
            wrong.append((method, path, response.status_code, response.text[:120]))
    assert not wrong, f"{role}: pages that break the matrix: {wrong}"


async def test_a_page_refused_to_an_api_key_holder_too(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    """An API key is not a session: pages take only the cookie of a person."""
    answer = await client.get("/portal", headers=acme.headers)
    assert answer.status_code == 303
