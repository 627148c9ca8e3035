"""A translation is a catalogue, not a template: with an Arabic catalogue in place, a
browser that asks for Arabic gets its strings, right to left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

from tidings.portal import templating

ARABIC_LOG_IN = "تسجيل الدخول"


@pytest.fixture
def arabic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    catalog = Catalog(locale="ar", domain="portal")
    catalog.add("Log in", ARABIC_LOG_IN)
    folder = tmp_path / "ar" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "portal.mo").open("wb") as out:
        write_mo(out, catalog)
    monkeypatch.setattr(templating, "LOCALE_DIR", tmp_path)
    templating.available_languages.cache_clear()
    templating._catalogue.cache_clear()
    yield
    templating.available_languages.cache_clear()
    templating._catalogue.cache_clear()


async def test_arabic_is_right_to_left_and_translated(client: httpx.AsyncClient,
                                                      arabic: None) -> None:
    page = await client.get("/portal/login", headers={"Accept-Language": "ar-EG,ar;q=0.9"})
    assert '<html lang="ar" dir="rtl">' in page.text
    assert f"<h1>{ARABIC_LOG_IN}</h1>" in page.text
    assert "Password" in page.text  # not in the catalogue: the template's own English


async def test_other_languages_fall_back_to_english_left_to_right(
        client: httpx.AsyncClient, arabic: None) -> None:
    for header in ("de-DE,de;q=0.9", "", "*", "x" * 300, ",,;;", "q=1;;;x-"):
        page = await client.get("/portal/login", headers={"Accept-Language": header})
        assert page.status_code == 200, header
        assert '<html lang="en" dir="ltr">' in page.text, header
    garbled = await client.get("/portal/login", headers={"Accept-Language": "ar;q=garbage"})
    assert '<html lang="ar" dir="rtl">' in garbled.text


def test_the_direction_of_a_language() -> None:
    assert templating.text_direction("ar") == "rtl"
    assert templating.text_direction("he") == "rtl"
    assert templating.text_direction("en") == "ltr"
    assert templating.text_direction("not a language") == "ltr"
