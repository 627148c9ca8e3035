"""What a page answers when something is refused: the log-in page, a gate's page, or an
error page in the portal's layout (never problem+json, which a person cannot read)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tidings.portal.deps import GateRedirect, LoginRequired
from tidings.portal.security import is_page_path
from tidings.portal.templating import render
from tidings.web.errors import TidingsError


def redirect(request: Request, location: str) -> Response:
    """A 303 to ``location``; to htmx, which would swap a redirect's page into a part of
    the current one, a 200 with ``HX-Redirect`` so that the whole page goes there."""
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


async def login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired | GateRedirect)
    return redirect(request, exc.location)


def error_page(request: Request, exc: TidingsError) -> Response | None:
    """The page for ``exc`` when ``request`` is a page's; None for the API's routes."""
    if not is_page_path(request.url.path):
        return None
    return render(request, "error.html", status=exc.status, status_code=exc.status,
                  detail=exc.detail, code=exc.code)
