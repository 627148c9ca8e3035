"""``/docs``: Swagger UI from files Tidings serves itself, so the reference works offline.

The assets come from the ``swagger-ui-bundle-v2`` package (Swagger UI, Apache-2.0),
pinned in ``pyproject.toml``; FastAPI's default page would load them from a CDN.
ReDoc is not offered: one reference is enough, and it would need a second bundle.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from tidings.web.errors import NotFound

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
# Only what the page loads; the bundle's demo index.html points at a public server.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})
# Swagger UI would otherwise ask a public validator about the schema.
UI_PARAMETERS = {"validatorUrl": None, "persistAuthorization": True}


def install_api_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets; create the app with ``docs_url=None``."""

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + ASSETS_PATH
        return get_swagger_ui_html(
            openapi_url=root + str(app.openapi_url), title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            swagger_ui_parameters=UI_PARAMETERS)

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def swagger_ui_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NotFound(f"No asset {name[:60]!r}.", code="not_found")
        return FileResponse(Path(str(swagger_ui_path)) / name)
