"""Helpers for the portal's tests: a browser's cookies for a person, the form token of a
page, what a page shows."""

from __future__ import annotations

import re

import httpx

from tests.users.people import Person, session_headers
from tidings.portal import csrf, session_cookie
from tidings.runtime import Runtime

TOKEN = "Tp3rNcW0k6ZkV0l5bG8tY3NyZi10b2tlbi1mb3ItdGVz"[:43]  # any 43 characters


async def signed_in(client: httpx.AsyncClient, rt: Runtime, who: Person) -> str:
    """Give ``client`` the cookies of ``who`` having logged in (no argon2, no code);
    the form token its pages carry."""
    bearer = (await session_headers(rt, who))["Authorization"].removeprefix("Bearer ")
    client.cookies.set(session_cookie.COOKIE, bearer)
    client.cookies.set(csrf.COOKIE, TOKEN)
    return TOKEN


def form_token(page: httpx.Response) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert found, page.text[:300]
    return found.group(1)


def field_error(page: httpx.Response, field: str) -> str | None:
    """The error shown next to ``field``, if any."""
    found = re.search(rf'<p class="error" id="{re.escape(field)}-error"[^>]*>([^<]*)</p>',
                      page.text)
    return found.group(1) if found else None


def page_error(page: httpx.Response) -> str | None:
    found = re.search(r'<p class="error"[^>]*data-code="([^"]+)"', page.text)
    return found.group(1) if found else None
