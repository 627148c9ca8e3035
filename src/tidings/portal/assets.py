"""The portal's static files, served by Tidings itself (no CDN: the portal works offline).

Third-party files are copied in once, pinned here with their licence and digest;
``tests/portal/test_assets.py`` fails when a file no longer matches its pin, so an
upgrade is a deliberate change of this table, never a silent one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/portal/static"


@dataclass(frozen=True)
class Vendored:
    name: str
    version: str
    file: str  # under static/
    licence: str
    licence_file: str
    source: str
    sha256: str


VENDORED = (
    Vendored(name="htmx", version="2.0.11", file="vendor/htmx-2.0.11.min.js",
             licence="0BSD", licence_file="vendor/htmx-LICENSE.txt",
             source="https://registry.npmjs.org/htmx.org/-/htmx.org-2.0.11.tgz (dist/htmx.min.js)",
             sha256="d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"),
)
HTMX = VENDORED[0]


class PortalStatic(StaticFiles):
    """The files under ``static/``; names carry their version, so they may be cached long."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR)

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
