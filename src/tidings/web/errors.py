"""RFC 9457 problem details with stable machine-readable codes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

if TYPE_CHECKING:  # FastAPI is imported by the app, not by every user of these errors
    from collections.abc import Callable

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_TYPE_BASE = "https://tidings.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
# What each status means in this API, for the OpenAPI description of its answers.
PROBLEM_MEANINGS = {
    400: "Invalid request: the body, a header or a query parameter (see `code`, `errors`).",
    401: "No API key or session token, or one that is malformed, unknown, revoked or "
         "expired; a wrong e-mail address, password or code.",
    403: "Not allowed: the key or the role lacks the permission, the account is suspended "
         "or terminated, or the password or a second factor must be seen to first.",
    404: "Not found, or not visible to this key.",
    409: "Conflicts with the current state.",
    410: "Gone: it was kept for a limited time and is deleted.",
    413: "The request body is too large.",
    422: "The new password breaks a rule of the password policy (see `rule`).",
    429: "Too many attempts or requests; wait before trying again.",
    503: "Not available now; try again later.",
}


class FieldError(BaseModel):
    loc: list[str] = Field(description="Where: body, query or header, then the field.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer, as ``application/problem+json``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem; ends with `code`.")
    title: str
    status: int
    code: str = Field(description="Stable and machine-readable: branch on this.")
    detail: str = Field(description="For a person; its wording may change.")
    instance: str | None = Field(default=None, description="The path of the request.")
    errors: list[FieldError] | None = Field(
        default=None, description="With `validation_failed`: each field that failed.")
    parameter: str | None = Field(
        default=None, description="With `unknown_query_parameter`: the parameter.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route or router: these statuses answer a ``Problem``."""
    return {status: {"description": PROBLEM_MEANINGS[status],
                     "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}}
            for status in statuses}


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class TidingsError(Exception):
    """An error a client caused or must know about; becomes problem+json."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            problem["instance"] = instance
        problem.update(self.extra)
        return problem


class InvalidRequest(TidingsError):
    status, code, title = 400, "invalid_request", "Invalid request"


class Unauthorized(TidingsError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(TidingsError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(TidingsError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(TidingsError):
    status, code, title = 409, "conflict", "Conflict"


class TooManyRequests(TidingsError):
    status, code, title = 429, "too_many_requests", "Too many requests"


class PayloadTooLarge(TidingsError):
    status, code, title = 413, "payload_too_large", "Payload too large"


def _validation_problem(request: Request, exc: RequestValidationError) -> ProblemResponse:
    errors = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", ""),
         "type": err.get("type", "")}
        for err in exc.errors()
    ]
    json_broken = any(e["type"] == "json_invalid" for e in errors)
    err = InvalidRequest(
        "The request body is not valid JSON." if json_broken
        else "The request does not match the schema.",
        code="malformed_json" if json_broken else "validation_failed",
        errors=errors,
    )
    return ProblemResponse(err.to_problem(request.url.path), status_code=err.status)


def install_error_handlers(app: FastAPI, *,
                           pages: Callable[[Request, TidingsError], Response | None] | None
                           = None) -> None:
    """Errors become problem+json; ``pages`` may answer those of a web page instead (it
    returns None for a request that is not a page's)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def answer(request: Request, err: TidingsError) -> Response:
        page = pages(request, err) if pages is not None else None
        if page is not None:
            return page
        headers = err.extra.pop("headers", None)
        return ProblemResponse(err.to_problem(request.url.path), status_code=err.status,
                               headers=headers)

    @app.exception_handler(TidingsError)
    async def _tidings(request: Request, exc: TidingsError) -> Response:
        return answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        page = pages(request, InvalidRequest("The form was not filled in as it should be.",
                                             code="validation_failed")) if pages else None
        return page if page is not None else _validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        err = TidingsError(str(exc.detail), code=code, status=exc.status_code)
        err.title = str(exc.detail)
        return answer(request, err)
