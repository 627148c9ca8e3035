"""Everything the portal loads comes from Tidings itself, pinned: no CDN, no file that
changed without its pin changing too."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from tidings.portal.assets import STATIC_DIR, VENDORED

TEMPLATES = Path(STATIC_DIR).parent / "templates"


def test_each_vendored_file_matches_its_pin_and_has_its_licence() -> None:
    for item in VENDORED:
        digest = hashlib.sha256((STATIC_DIR / item.file).read_bytes()).hexdigest()
        assert digest == item.sha256, f"{item.file} is not the pinned {item.name} {item.version}"
        assert (STATIC_DIR / item.licence_file).read_text().strip()
        assert item.version in item.file  # a new version is a new name: caches cannot mix


def test_no_template_loads_anything_from_elsewhere() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), template.name
        assert "<script>" not in text, template.name
        assert " style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), f"inline handler in {template.name}"


async def test_static_files_are_served_with_their_type(client: httpx.AsyncClient) -> None:
    script = await client.get(f"/portal/static/{VENDORED[0].file}")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript",
                                                      "application/javascript"))
    assert hashlib.sha256(script.content).hexdigest() == VENDORED[0].sha256
    css = await client.get("/portal/static/portal.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert (await client.get("/portal/static/../assets.py")).status_code == 404
    assert (await client.get("/portal/static/nothing.js")).status_code == 404
