"""Rendering a page: Jinja2 templates, autoescaped, every string through gettext.

The language comes from the browser's ``Accept-Language``, among the catalogues under
``locale/`` (English, the templates' own text, needs none); the page's ``dir`` follows
the language (right-to-left for Arabic), so a translation is a catalogue, not a new
template. See docs/portal.md, "Translations".
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale, UnknownLocaleError
from babel.support import NullTranslations, Translations
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tidings.portal import csrf
from tidings.portal.assets import HTMX, STATIC_PATH

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "en"
_language: ContextVar[str] = ContextVar("portal_language", default=DEFAULT_LANGUAGE)


@functools.cache
def available_languages() -> tuple[str, ...]:
    found = sorted(p.name for p in LOCALE_DIR.glob("*") if (p / "LC_MESSAGES").is_dir())
    return (DEFAULT_LANGUAGE, *(name for name in found if name != DEFAULT_LANGUAGE))


@functools.cache
def _catalogue(language: str) -> NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], domain="portal")


def gettext(message: str) -> str:
    return _catalogue(_language.get()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _catalogue(_language.get()).ungettext(singular, plural, n)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tidings.portal", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.i18n"],
        trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(static=STATIC_PATH, htmx=HTMX.file)
    return env


ENV = _environment()


def language_of(request: Request) -> str:
    """The best of ``available_languages()`` for the browser's ``Accept-Language``."""
    wanted = [part.split(";")[0].strip().replace("-", "_")
              for part in request.headers.get("accept-language", "").split(",")[:10]]
    try:
        chosen = Locale.negotiate([w for w in wanted if w and w != "*"],
                                  list(available_languages()))
    except (ValueError, UnknownLocaleError):
        chosen = None
    return str(chosen) if chosen else DEFAULT_LANGUAGE


def text_direction(language: str) -> str:
    try:
        return "rtl" if Locale.parse(language).character_order == "right-to-left" else "ltr"
    except (ValueError, UnknownLocaleError):
        return "ltr"


def render(request: Request, template: str, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    """The page ``template`` for ``request``, with what every page needs: the language
    and its direction, the form token (set as a cookie too when new), the current path."""
    language = language_of(request)
    reset = _language.set(language)
    try:
        token = csrf.token_for(request)
        html = ENV.get_template(template).render(
            request=request, path=request.url.path, lang=language,
            dir=text_direction(language), csrf_token=token, **context)
    finally:
        _language.reset(reset)
    response = HTMLResponse(html, status_code=status)
    csrf.remember(request, response, token)
    return response
