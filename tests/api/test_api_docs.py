"""``/docs`` works offline: the page loads only assets Tidings serves itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import assert_problem
from tidings.app import create_app
from tidings.core.settings import Settings

CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",),
                 ".png": ("image/png",), ".json": ("application/json",)}


class _References(HTMLParser):
    """Every URL the page makes the browser fetch: src, href, and the schema's url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]

    def handle_data(self, data: str) -> None:
        self.urls += re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", data)


@pytest.fixture
async def docs_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # No runtime: the reference and its assets need no database.
    app = create_app(Settings(data_dir=tmp_path / "data"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://tidings.test") as client:
        yield client


async def test_the_docs_page_references_only_same_origin_assets(
        docs_client: httpx.AsyncClient) -> None:
    page = await docs_client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text
    assert "https://" not in page.text
    parser = _References()
    parser.feed(page.text)
    assert len(parser.urls) == 4, parser.urls  # stylesheet, icon, script, schema
    for url in parser.urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url


async def test_each_asset_is_served_with_its_type(docs_client: httpx.AsyncClient) -> None:
    parser = _References()
    parser.feed((await docs_client.get("/docs")).text)
    for url in parser.urls:
        response = await docs_client.get(url)
        assert response.status_code == 200, url
        expected = CONTENT_TYPES[Path(url).suffix]
        assert response.headers["content-type"].split(";")[0] in expected, (url, response.headers)
        assert len(response.content) > 500, url  # the file, not an empty answer


async def test_the_script_is_swagger_ui(docs_client: httpx.AsyncClient) -> None:
    script = await docs_client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text


@pytest.mark.parametrize("path", [
    "/docs/assets/index.html", "/docs/assets/swagger-initializer.js",
    "/docs/assets/..%2F__init__.py", "/docs/assets/swagger-ui-bundle.js.map", "/redoc",
])
async def test_nothing_else_is_served(docs_client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await docs_client.get(path), 404, "not_found")
