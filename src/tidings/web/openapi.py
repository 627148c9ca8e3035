"""The OpenAPI description, as a generated client needs it.

Every error is a ``Problem`` (``application/problem+json``); each route declares the
statuses it can answer (``errors.problem_responses``). FastAPI would add a ``422``
to every route with parameters, an answer Tidings never gives: its validation
errors are ``400`` problems (``errors.install_error_handlers``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tidings.web.errors import Problem

REF_TEMPLATE = "#/components/schemas/{model}"
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    problem = Problem.model_json_schema(ref_template=REF_TEMPLATE)
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for operations in schema["paths"].values():
        for operation in operations.values():
            if _is_fastapi_validation(operation["responses"].get("422")):
                del operation["responses"]["422"]
    return schema


def _is_fastapi_validation(response: dict[str, Any] | None) -> bool:
    """FastAPI's own ``422`` (never answered: invalid input is a 400), not a route's
    declared one (a refused password is a 422 problem)."""
    if response is None:
        return False
    content = response.get("content", {}).get("application/json", {})
    return "HTTPValidationError" in str(content.get("schema", {}))
