"""FastAPI dependencies shared by every router: the runtime's services, the bearer
schemes, the problems every keyed route can answer, unknown query parameters refused.
Who the caller is comes from the domain that knows: ``accounts/deps.py`` (API keys),
``operators/deps.py`` (operator keys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase

from tidings.core.services import Services
from tidings.web.errors import InvalidRequest, problem_responses


async def get_runtime(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool,
    # a thread hop per request for a dictionary look-up.
    runtime: Services = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Services, Depends(get_runtime)]


class BearerKey(SecurityBase):
    """``Authorization: Bearer <key>``, declared as a security scheme in OpenAPI.

    It hands on the raw header: the caller parses it, exactly as the fast send path
    (``messaging/fast_send.py``) does, so both answer a bad header alike.
    """

    def __init__(self, scheme_name: str, *, key_format: str, description: str) -> None:
        self.model = HTTPBearerModel(bearerFormat=key_format, description=description)
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


API_KEY = BearerKey("ApiKey", key_format="tdk_... or tds_...",
                    description="An account's API key, `tdk_...` (`POST /v1/keys`, or "
                                "`tidings accounts create`), or a person's session token, "
                                "`tds_...` (`POST /v1/auth/login`).")
OPERATOR_KEY = BearerKey("OperatorKey", key_format="tdo_...",
                         description="An operator key, `tdo_...` "
                                     "(`tidings operator-keys create`).")


# What any route behind a key can answer, whatever it does: a malformed header or query
# (400) and no valid key (401); with an API key also a terminated account (403) and a
# Tidings-Account that is not below the key's account (404).
PROBLEMS_OF_API_KEY_ROUTES = problem_responses(400, 401, 403, 404)
PROBLEMS_OF_OPERATOR_ROUTES = problem_responses(400, 401)


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not declare, or one given twice, is a 400.

    Otherwise a misspelt filter (``?from=``, ``?state=``) would be ignored and the
    list would answer with every row, which looks like a valid, filtered answer.
    """
    route = request.scope.get("route")
    known = _query_names(route.dependant) if isinstance(route, APIRoute) else set()
    for name in request.query_params:
        if name not in known:
            takes = ", ".join(sorted(known)) or "no query parameters"
            raise InvalidRequest(f"Unknown query parameter {name[:60]!r}; this list takes "
                                 f"{takes}.", code="unknown_query_parameter",
                                 parameter=name[:60])
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidRequest(f"The query parameter {name!r} is given more than once.",
                                 code="repeated_query_parameter", parameter=name)


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


# Declared by every list route: ``@router.get("", dependencies=[KnownQueryOnly])``.
KnownQueryOnly = Depends(reject_unknown_query)


async def open_to_anyone() -> None:
    """Declares a route that needs no credential (a log-in, a health check, a carrier's
    signed callback): ``tests/api/test_route_permissions.py`` fails a route that
    declares neither this nor a permission."""


public = Depends(open_to_anyone)
