"""The log-in session a browser holds: the same ``tds_`` token as ``POST /v1/auth/login``
gives, in a cookie that scripts cannot read (``HttpOnly``), that other sites' requests
do not carry (``SameSite=Lax``), sent over HTTPS only when the portal is served so."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from tidings.users.sessions import is_session_token

COOKIE = "tidings_session"


def token_of(request: Request) -> str | None:
    raw = request.cookies.get(COOKIE)
    return raw if raw and is_session_token(raw) and len(raw) < 100 else None


def keep(request: Request, response: Response, token: str, *, expires_at: datetime,
         now: datetime) -> None:
    """Until the session's own end, as a lifetime (the browser's clock is not ours)."""
    lifetime = max(int((expires_at - now).total_seconds()), 0)
    response.set_cookie(COOKIE, token, max_age=lifetime, httponly=True, samesite="lax",
                        path="/", secure=request.url.scheme == "https")


def forget(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax",
                           secure=request.url.scheme == "https")
