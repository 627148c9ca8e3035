"""Forms and htmx requests carry a token only the portal's own pages know.

The token is 256 random bits kept in a cookie of its own (``HttpOnly``,
``SameSite=Strict``), written into every page: a form sends it as ``_csrf``, htmx as the
``X-CSRF-Token`` header. A request that changes something must bring the cookie's value
(a site that cannot read our pages cannot), and, where the browser names it, come from
our own origin. Logging in and out issues a new token, so a form from before is stale.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from tidings.web.errors import Forbidden

COOKIE = "tidings_csrf"
FIELD = "_csrf"
HEADER = "x-csrf-token"
_NEW = "portal_new_csrf"  # request.state: a token issued during this request


def token_for(request: Request) -> str:
    """The token of this browser, or a new one (then ``remember`` sets its cookie)."""
    issued: str | None = getattr(request.state, _NEW, None)
    if issued:
        return issued
    existing = request.cookies.get(COOKIE, "")
    if len(existing) == 43 and existing.isascii():
        return existing
    return renew(request)


def renew(request: Request) -> str:
    token = secrets.token_urlsafe(32)
    setattr(request.state, _NEW, token)
    return token


def remember(request: Request, response: Response, token: str) -> None:
    if getattr(request.state, _NEW, None) == token:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")


def stale() -> Forbidden:
    return Forbidden("This form has expired or came from elsewhere. Reload the page and "
                     "try again; nothing was changed.", code="csrf_failed")


async def check(request: Request) -> None:
    """Refuse (403, nothing changed) a request without the browser's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise stale()
    expected = request.cookies.get(COOKIE, "")
    sent = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise stale()
