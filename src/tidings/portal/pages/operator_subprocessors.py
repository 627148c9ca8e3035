"""The sub-processor register in the operator's console (``/operator/subprocessors``),
for staff: the register (each entry's status now, when it takes effect, the clients
told, the objections still open, the connectors it carries for) and recording an entry;
an entry's page with its facts, a change while nobody was told, **Notify the clients**
(in effect thirty days or more later), **Retire**, and each client's notice with the
proof it was sent, the client's objection and its resolution.

Each action is the operator API's own (``subprocessors/api.py``), so the page does
exactly what ``/v1/operator/subprocessors`` does, with the same checks. A form's fields
are read as text and checked here, each complaint beside its field, nothing written on
any.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from tidings.core.data_categories import CATEGORIES
from tidings.core.services import Services
from tidings.operators.deps import Operator
from tidings.portal.deps import StaffMember
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, field_text, field_texts, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.storage.db import SYSTEM
from tidings.subprocessors.api import (
    entry_notices,
    notify_entry,
    record_entry,
    register_entries,
    register_entry,
    resolve_objection,
    retire_entry,
)
from tidings.subprocessors.models import Resolution, Transfer
from tidings.subprocessors.register import NOTICE_PERIOD, do_change
from tidings.subprocessors.schemas import (
    CreateSubprocessor,
    OperatorSubprocessorOut,
    ResolutionIn,
    SubprocessorFields,
    SubprocessorNoticeOut,
)
from tidings.web.deps import RuntimeDep
from tidings.web.errors import NotFound, TidingsError

router = APIRouter(prefix="/operator/subprocessors", include_in_schema=False)
Field = Annotated[str, Form()]
ID_LENGTH = 40  # an entry's or an account's id; a path longer is none
TRANSFERS = tuple(t.value for t in Transfer)
OUTCOMES = tuple(r.value for r in Resolution)
# What the register takes as personal data (``register._categories``): the user.* keys.
PERSONAL_CATEGORIES = tuple(sorted(c for c in CATEGORIES if c.startswith("user.")))
# The text fields as the API names them, with their label and limit (``schemas.py``).
TEXTS = {"legal_name": ("Legal name", 200), "purpose": ("Purpose", 500),
         "security_summary": ("Security measures", 2000)}
FIELDS = {*TEXTS, "countries", "data_categories", "transfer_mechanism"}
MOST_COUNTRIES = 30
COUNTRIES_LENGTH = MOST_COUNTRIES * 4  # "GB, " thirty times
NOTE_LENGTH = 1000
_COUNTRY = re.compile(r"[A-Z]{2}")
_COUNTRY_SPLIT = re.compile(r"[\s,;]+")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
# The date the notify form proposes leaves this long to send it: the notice period is
# counted from the instant the form arrives, not from when the page was shown.
FORM_SLACK = timedelta(minutes=15)


# --------------------------------------------------------------------------- the register


@router.get("")
async def register_page(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    return await _register(request, rt, operator, FormErrors(), form={})


@router.post("")
async def record(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    raw = await request.form()
    errors = FormErrors()
    data = _entry_data(errors, raw)
    if not errors:
        try:
            made = await record_entry(rt, CreateSubprocessor.model_validate(data),
                                      operator.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, FIELDS)
        except TidingsError as refused:
            errors.add(_field_of(refused), refused.detail)
        else:
            return redirect(request, f"/operator/subprocessors/{made.id}")
    return await _register(request, rt, operator, errors, form=_echo(raw), status=400)


async def _register(request: Request, rt: Services, operator: Operator, errors: FormErrors,
                    *, form: dict[str, Any], status: int = 200) -> Response:
    return render(request, "operator/subprocessors.html", principal=None, staff=operator,
                  entries=await register_entries(rt), errors=errors,
                  form=form or {"data_categories": [], "transfer_mechanism": ""},
                  categories=PERSONAL_CATEGORIES, transfers=TRANSFERS, status=status)


# --------------------------------------------------------------------------- an entry


@router.get("/{sub_id}")
async def entry_page(request: Request, rt: RuntimeDep, sub_id: str,
                     operator: StaffMember) -> Response:
    return await _entry(request, rt, operator, sub_id, FormErrors())


@router.post("/{sub_id}")
async def change(request: Request, rt: RuntimeDep, sub_id: str,
                 operator: StaffMember) -> Response:
    """The entry's fields replaced, while no client was told (``PATCH``'s)."""
    raw = await request.form()
    errors = FormErrors()
    data = _entry_data(errors, raw)
    if not errors:
        try:
            async with rt.db.transaction(tenant=SYSTEM) as session:
                await do_change(session, sub_id=_id(sub_id),
                                body=SubprocessorFields.model_validate(data),
                                now=rt.clock.now())
        except ValidationError as invalid:
            schema_errors(errors, invalid, FIELDS)
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add(_field_of(refused), refused.detail)
        else:
            return redirect(request, f"/operator/subprocessors/{_id(sub_id)}?changed=1")
    return await _entry(request, rt, operator, sub_id, errors, form=_echo(raw), status=400)


@router.post("/{sub_id}/notify")
async def notify_clients(request: Request, rt: RuntimeDep, sub_id: str,
                         operator: StaffMember, effective_at: Field = "") -> Response:
    errors = FormErrors()
    when = _time(errors, "effective_at", effective_at)
    if when is not None and not errors:
        try:
            await notify_entry(rt, _id(sub_id), when)
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add("effective_at" if refused.extra.get("parameter") == "effective_at"
                       else "", refused.detail)
        else:
            return redirect(request, f"/operator/subprocessors/{_id(sub_id)}#notices")
    return await _entry(request, rt, operator, sub_id, errors,
                        effective_at=effective_at[:19], status=400)


@router.post("/{sub_id}/retire")
async def retire(request: Request, rt: RuntimeDep, sub_id: str, operator: StaffMember,
                 confirm: Field = "") -> Response:
    errors = FormErrors()
    # Retiring stops its connectors at once: a box to tick, not a stray click.
    if confirm != "yes":
        errors.add("confirm", _("Tick the box to confirm: its connectors stop carrying "
                                "messages at once."))
    else:
        try:
            await retire_entry(rt, _id(sub_id))
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add("", refused.detail)
        else:
            return redirect(request, f"/operator/subprocessors/{_id(sub_id)}")
    return await _entry(request, rt, operator, sub_id, errors, status=400)


@router.post("/{sub_id}/objections/{account_id}/resolution")
async def resolve(request: Request, rt: RuntimeDep, sub_id: str, account_id: str,
                  operator: StaffMember, outcome: Field = "", note: Field = "") -> Response:
    errors = FormErrors()
    account = _id(account_id)
    if outcome not in OUTCOMES:
        errors.add(f"outcome-{account}", _("Choose one of the listed outcomes."))
    cleaned = text_field(errors, f"note-{account}", _lines(note), label="Note",
                         max_length=NOTE_LENGTH)
    if not errors:
        try:
            await resolve_objection(rt, _id(sub_id), account, ResolutionIn.model_validate(
                {"outcome": outcome, "note": cleaned}), operator.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add(f"note-{account}" if refused.extra.get("parameter") == "note" else "",
                       refused.detail)
        else:
            return redirect(request, f"/operator/subprocessors/{_id(sub_id)}#notices")
    return await _entry(request, rt, operator, sub_id, errors,
                        resolving={"account": account, "outcome": outcome[:20],
                                   "note": cleaned[:NOTE_LENGTH]}, status=400)


async def _entry(request: Request, rt: Services, operator: Operator, sub_id: str,
                 errors: FormErrors, *, form: dict[str, Any] | None = None,
                 effective_at: str | None = None, resolving: dict[str, str] | None = None,
                 status: int = 200) -> Response:
    """An entry's page; 404 for an id that is none, as the API answers."""
    out = await register_entry(rt, _id(sub_id))
    notices = await entry_notices(rt, out.id)
    _unplaced_to_top(errors, notices)
    default = _default_effective(rt.clock.now())
    # Counted from the notices listed, not the entry's counts: the notify job may write
    # between the two reads, and the page must agree with itself.
    objected = [n for n in notices if n.objected_at is not None]
    return render(request, "operator/subprocessor.html", principal=None, staff=operator,
                  entry=out, notices=notices, errors=errors, objections=len(objected),
                  open_objections=len([n for n in objected if n.resolution is None]),
                  form=form if form is not None else _form_of(out),
                  effective_at=effective_at if effective_at is not None
                  else default.strftime("%Y-%m-%dT%H:%M"),
                  changed=request.query_params.get("changed") == "1",
                  categories=PERSONAL_CATEGORIES, transfers=TRANSFERS, outcomes=OUTCOMES,
                  resolving=resolving or {}, status=status)


def _unplaced_to_top(errors: FormErrors, notices: list[SubprocessorNoticeOut]) -> None:
    """A resolution's complaint about an account without an open objection has no form
    to sit beside: it goes to the top of the page."""
    open_ = {n.account_id for n in notices if n.objected_at and n.resolution is None}
    for key in [k for k in errors if k.startswith(("outcome-", "note-"))]:
        if key.split("-", 1)[1] not in open_:
            errors.add("", errors.pop(key))


def _default_effective(now: datetime) -> datetime:
    """Thirty days from now, rounded up to a whole hour at least ``FORM_SLACK`` away."""
    soonest = now + NOTICE_PERIOD + FORM_SLACK
    return soonest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _form_of(out: OperatorSubprocessorOut) -> dict[str, Any]:
    """The entry as the change form starts from it."""
    return {"legal_name": out.legal_name, "countries": ", ".join(out.countries),
            "purpose": out.purpose, "data_categories": out.data_categories,
            "transfer_mechanism": out.transfer_mechanism,
            "security_summary": out.security_summary}


# --------------------------------------------------------------------------- the form


def _lines(text: str) -> str:
    """A textarea's text with the browser's CRLF line ends as the API's own."""
    return text.replace("\r\n", "\n")


def _echo(raw: FormData) -> dict[str, Any]:
    """The form as it was sent, cut to size, to fill it in again."""
    form: dict[str, Any] = {name: _lines(field_text(raw, name))[:limit]
                            for name, (_label, limit) in TEXTS.items()}
    form["countries"] = field_text(raw, "countries")[:COUNTRIES_LENGTH]
    form["transfer_mechanism"] = field_text(raw, "transfer_mechanism")[:20]
    form["data_categories"] = [v[:60] for v in field_texts(raw, "data_categories")][:40]
    return form


def _entry_data(errors: FormErrors, raw: FormData) -> dict[str, Any]:
    """An entry's fields from the form, each checked, as the API's body has them."""
    data: dict[str, Any] = {name: text_field(errors, name, _lines(field_text(raw, name)),
                                             label=label, max_length=limit)
                            for name, (label, limit) in TEXTS.items()}
    if "legal_name" not in errors and any(c in data["legal_name"] for c in "\r\n"):
        errors.add("legal_name", _("Legal name: one line."))
    data["countries"] = _countries(errors, field_text(raw, "countries"))
    data["data_categories"] = _categories(errors, raw)
    transfer = field_text(raw, "transfer_mechanism")
    if transfer not in TRANSFERS:
        errors.add("transfer_mechanism", _("Choose one of the listed safeguards."))
    data["transfer_mechanism"] = transfer
    return data


def _countries(errors: FormErrors, raw: str) -> list[str]:
    """ "GB, IE" as ["GB", "IE"]; whether each is a country is the register's to say."""
    text = text_field(errors, "countries", raw, label="Countries",
                      max_length=COUNTRIES_LENGTH)
    codes = [code.upper() for code in _COUNTRY_SPLIT.split(text) if code]
    if "countries" in errors:
        return codes
    if len(codes) > MOST_COUNTRIES:
        errors.add("countries", _("Countries: at most %(n)d.") % {"n": MOST_COUNTRIES})
    elif not all(_COUNTRY.fullmatch(code) for code in codes):
        errors.add("countries", _("Countries: two-letter ISO 3166-1 codes, such as GB, IE."))
    return codes


def _categories(errors: FormErrors, raw: FormData) -> list[str]:
    chosen = list(dict.fromkeys(field_texts(raw, "data_categories")))
    if not chosen:
        errors.add("data_categories", _("Personal data: choose at least one category."))
    elif any(c not in PERSONAL_CATEGORIES for c in chosen):
        errors.add("data_categories", _("Choose among the listed categories."))
    return [c for c in chosen if c in PERSONAL_CATEGORIES]


def _time(errors: FormErrors, name: str, raw: str) -> datetime | None:
    """A time as the browser's field sends it, in UTC (whole: a trailing offset is not
    dropped in silence)."""
    value = raw.strip()
    if not value:
        errors.add(name, _("Takes effect: this field is required."))
        return None
    for layout in _TIME_FORMATS:
        try:
            return datetime.strptime(value, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    errors.add(name, _("Enter a time as YYYY-MM-DD HH:MM (UTC)."))
    return None


def _field_of(refused: TidingsError) -> str:
    """The form's field a refusal names (its ``parameter``), else the form as a whole."""
    parameter = str(refused.extra.get("parameter") or "")
    return parameter if parameter in FIELDS else ""


def _id(raw: str) -> str:
    return raw[:ID_LENGTH]
