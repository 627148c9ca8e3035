"""Reading a form's fields with a message a person understands, shown next to the field.

FastAPI would answer a missing or malformed form field with a ``400`` problem; a page
takes every field as text (empty when missing) and checks it here, so that the form
comes back filled in, with the message beside the field that needs it, and nothing
changed.
"""

from __future__ import annotations

from datetime import date

from pydantic import ValidationError
from starlette.datastructures import FormData

from tidings.portal.templating import gettext as _


class FormErrors(dict[str, str]):
    """Field name → what is wrong with it; ``""`` for the form as a whole."""

    def add(self, field: str, message: str) -> FormErrors:
        self.setdefault(field, message)
        return self


def text_field(errors: FormErrors, name: str, raw: str, *, label: str, max_length: int,
               required: bool = True, strip: bool = True) -> str:
    """``raw`` checked: present when required, at most ``max_length`` characters, no
    control characters; what to use (stripped unless ``strip`` is False)."""
    value = raw.strip() if strip else raw
    if required and not value.strip():
        errors.add(name, _("%(label)s: this field is required.") % {"label": _(label)})
    elif len(value) > max_length:
        errors.add(name, _("%(label)s is too long: at most %(max)d characters.")
                   % {"label": _(label), "max": max_length})
    elif any(ord(c) < 32 and c not in "\r\n\t" for c in value):
        errors.add(name, _("%(label)s holds characters that cannot be typed.")
                   % {"label": _(label)})
    return value


def date_field(errors: FormErrors, name: str, raw: str) -> date | None:
    """A day as the browser's date field sends it (YYYY-MM-DD), or None when empty."""
    if not raw:
        return None
    try:
        if len(raw) != len("YYYY-MM-DD"):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        errors.add(name, _("Enter a date as YYYY-MM-DD."))
        return None


def schema_errors(errors: FormErrors, invalid: ValidationError, fields: set[str]) -> FormErrors:
    """A schema's complaints, each beside its field (else at the top of the form)."""
    for error in invalid.errors():
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc and loc[0] in fields else ""
        errors.add(field, _readable(error.get("msg", "")))
    return errors


def _readable(message: str) -> str:
    """Pydantic's message without its "Value error, " prefix, as a sentence."""
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:]


def field_text(raw: FormData, name: str) -> str:
    """A field's text as sent; "" when it is missing or is a file."""
    value = raw.get(name)
    return value if isinstance(value, str) else ""


def field_texts(raw: FormData, name: str) -> list[str]:
    """Every text sent under ``name`` (checkboxes, multiple selects); files left out."""
    return [v for v in raw.getlist(name) if isinstance(v, str)]
