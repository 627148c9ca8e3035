"""The operator's breach register in the console (``/operator/breaches``), for staff:
the breaches with their 48-hour clocks (due in, overdue, escalated), recording one, a
breach's page with its versions, its impact per account, its notices, a new version,
**Notify** and **Close**.

Each action is the operator API's own (``breaches/api.py``), so the page does exactly
what ``/v1/operator/breaches`` does, with the same checks. A form's fields are read as
text and checked here, each complaint beside its field, nothing written on any.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from tidings.breaches.api import (
    append_version,
    close,
    create_breach,
    estimate,
    fetch_breach,
    fetch_breaches,
    notify,
)
from tidings.breaches.schemas import (
    BreachDetail,
    BreachImpactOut,
    BreachOut,
    BreachVersionIn,
    BreachVersionOut,
    CloseBreach,
    CreateBreach,
)
from tidings.breaches.service import PERSONAL_CATEGORIES
from tidings.core.services import Services
from tidings.operators.deps import Operator
from tidings.portal.deps import StaffMember
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, field_text, field_texts, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import NotFound, TidingsError

router = APIRouter(prefix="/operator/breaches", include_in_schema=False)
NATURES = ("confidentiality", "integrity", "availability")
ID_LENGTH = 40
# The form's fields, as the API names them (``scope.tenants``: ``scope_tenants``).
TEXTS = {"nature_description": ("Description", 2000), "approx_subjects": ("People", 40),
         "approx_subjects_reason": ("Why unknown", 500), "approx_records": ("Records", 40),
         "likely_consequences": ("Likely consequences", 2000),
         "measures_taken": ("Measures taken", 2000), "contact": ("Contact point", 500)}
LISTS = {"categories_of_subjects": ("Categories of people", 20, 100),
         "scope_tenants": ("Accounts", 1000, 40)}
CHOICES = ("categories_of_records", "scope_categories")
TIMES = {"detected_at": "Detected", "aware_at": "Aware", "window_start": "From",
         "window_end": "Until"}
FIELDS = {"nature", *TEXTS, *LISTS, *CHOICES, *TIMES}
_API_NAMES = {"scope.tenants": "scope_tenants", "scope.window_start": "window_start",
              "scope.window_end": "window_end", "scope.categories": "scope_categories"}
_SPLIT = re.compile(r"[\n,]+")
_TENANT_SPLIT = re.compile(r"[\s,]+")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- the register


@router.get("")
async def register_page(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    return await _register(request, rt, operator, FormErrors(), form={})


@router.post("")
async def record(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    raw = await request.form()
    errors = FormErrors()
    form = _echo(raw)
    data = _version_data(errors, raw)
    for name in ("detected_at", "aware_at"):
        data[name] = _time(errors, name, field_text(raw, name), required=True)
    if not errors:
        try:
            made = await create_breach(rt, CreateBreach.model_validate(data),
                                       actor=operator.actor)
        except ValidationError as invalid:
            _schema_errors(errors, invalid)
        except TidingsError as refused:
            errors.add(_field_of(refused), refused.detail)
        else:
            return redirect(request, f"/operator/breaches/{made.id}")
    return await _register(request, rt, operator, errors, form=form, status=400)


async def _register(request: Request, rt: Services, operator: Operator, errors: FormErrors,
                    *, form: dict[str, Any], status: int = 200) -> Response:
    now = rt.clock.now()
    found = await fetch_breaches(rt)
    return render(request, "operator/breaches.html", principal=None, staff=operator,
                  breaches=[(b, _clock(b, now)) for b in found], errors=errors,
                  form=form or {"nature": "", "categories_of_records": [],
                                "scope_categories": []},
                  natures=NATURES, categories=PERSONAL_CATEGORIES, status=status)


# --------------------------------------------------------------------------- a breach


@router.get("/{breach_id}")
async def breach_page(request: Request, rt: RuntimeDep, breach_id: str,
                      operator: StaffMember) -> Response:
    impact = request.query_params.get("impact") == "1"
    return await _breach(request, rt, operator, breach_id, FormErrors(), impact=impact)


@router.post("/{breach_id}/versions")
async def add_version(request: Request, rt: RuntimeDep, breach_id: str,
                      operator: StaffMember) -> Response:
    raw = await request.form()
    errors = FormErrors()
    data = _version_data(errors, raw)
    if not errors:
        try:
            await append_version(rt, _id(breach_id), BreachVersionIn.model_validate(data),
                                 actor=operator.actor)
        except ValidationError as invalid:
            _schema_errors(errors, invalid)
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add(_field_of(refused), refused.detail)
        else:
            return redirect(request, f"/operator/breaches/{_id(breach_id)}")
    return await _breach(request, rt, operator, breach_id, errors, form=_echo(raw),
                         status=400)


@router.post("/{breach_id}/notify")
async def notify_clients(request: Request, rt: RuntimeDep, breach_id: str,
                         operator: StaffMember) -> Response:
    errors = FormErrors()
    try:
        await notify(rt, _id(breach_id), actor=operator.actor)
    except NotFound:
        raise
    except TidingsError as refused:
        errors.add("", refused.detail)
        for name in refused.extra.get("missing", []):  # each beside its field
            errors.add(_API_NAMES.get(name, name), _("Needed before notifying."))
    else:
        return redirect(request, f"/operator/breaches/{_id(breach_id)}#notices")
    return await _breach(request, rt, operator, breach_id, errors, status=400)


@router.post("/{breach_id}/close")
async def close_breach(request: Request, rt: RuntimeDep, breach_id: str,
                       operator: StaffMember) -> Response:
    raw = await request.form()
    errors = FormErrors()
    reason = text_field(errors, "reason", field_text(raw, "reason"), label="Reason",
                        max_length=500)
    if "\n" in reason or "\r" in reason:
        errors.add("reason", _("Reason: one line."))
    if not errors:
        try:
            await close(rt, _id(breach_id), CloseBreach(reason=reason), actor=operator.actor)
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add("reason" if _field_of(refused) == "reason" else "", refused.detail)
        else:
            return redirect(request, f"/operator/breaches/{_id(breach_id)}")
    return await _breach(request, rt, operator, breach_id, errors,
                         close_form={"reason": reason[:500]}, status=400)


async def _breach(request: Request, rt: Services, operator: Operator, breach_id: str,
                  errors: FormErrors, *, form: dict[str, Any] | None = None,
                  close_form: dict[str, str] | None = None, impact: bool = False,
                  status: int = 200) -> Response:
    """A breach's page; 404 for an id that is none, as the API answers."""
    out = await fetch_breach(rt, _id(breach_id))
    estimated: BreachImpactOut | None = None
    impact_error = ""
    if impact:
        try:
            estimated = await estimate(rt, out.id)
        except TidingsError as refused:
            impact_error = refused.detail
    return render(request, "operator/breach.html", principal=None, staff=operator,
                  breach=out, clock=_clock(out, rt.clock.now()), errors=errors,
                  form=form if form is not None else _form_of(out.current),
                  close_form=close_form or {}, impact=estimated, impact_error=impact_error,
                  notifiable=_notifiable(out), natures=NATURES,
                  categories=PERSONAL_CATEGORIES, status=status)


def _notifiable(out: BreachDetail) -> bool:
    return out.status != "closed" and out.notified_version != out.current_version


# --------------------------------------------------------------------------- the clock


def _clock(out: BreachOut, now: datetime) -> str:
    """Where a breach's 48 hours stand, in words."""
    if out.status == "closed":
        return _("closed")
    if out.status == "notified":
        if out.notified_at is not None and out.notified_at >= out.due_at:
            return _("notified late")
        return _("notified in time")
    if out.overdue:
        return _("overdue by %(time)s") % {"time": _duration((now - out.due_at)
                                                             .total_seconds())}
    return _("due in %(time)s") % {"time": _duration(out.due_in or 0)}


def _duration(seconds: float) -> str:
    minutes = max(int(seconds) // 60, 0)
    hours, minutes = divmod(minutes, 60)
    return _("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}


# --------------------------------------------------------------------------- the form


def _echo(raw: FormData) -> dict[str, Any]:
    """The form as it was sent, cut to size, to fill it in again."""
    form: dict[str, Any] = {name: field_text(raw, name)[:2000] for name in FIELDS
                            if name not in CHOICES}
    for name in CHOICES:
        form[name] = [v[:60] for v in field_texts(raw, name)][:40]
    return form


def _form_of(current: BreachVersionOut) -> dict[str, Any]:
    """The current version, to start the next from."""
    return {"nature": current.nature or "",
            **{name: getattr(current, name) or "" for name in TEXTS},
            "categories_of_subjects": "\n".join(current.categories_of_subjects),
            "categories_of_records": current.categories_of_records,
            "scope_tenants": "\n".join(current.scope.tenants),
            "window_start": _time_value(current.scope.window_start),
            "window_end": _time_value(current.scope.window_end),
            "scope_categories": current.scope.categories}


def _time_value(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _version_data(errors: FormErrors, raw: FormData) -> dict[str, Any]:
    """The version's fields from the form, each checked; an empty field clears one."""
    data: dict[str, Any] = {}
    nature = field_text(raw, "nature")
    if nature and nature not in NATURES:
        errors.add("nature", _("Choose one of the listed natures."))
    data["nature"] = nature if nature in NATURES else None
    for name, (label, limit) in TEXTS.items():
        value = text_field(errors, name, field_text(raw, name), label=label, max_length=limit,
                           required=False)
        data[name] = value or None
    data["categories_of_subjects"] = _list(errors, raw, "categories_of_subjects", _SPLIT)
    data["categories_of_records"] = _choices(errors, raw, "categories_of_records")
    data["scope"] = {
        "tenants": _list(errors, raw, "scope_tenants", _TENANT_SPLIT),
        "window_start": _time(errors, "window_start", field_text(raw, "window_start"),
                              required=False),
        "window_end": _time(errors, "window_end", field_text(raw, "window_end"), required=False),
        "categories": _choices(errors, raw, "scope_categories")}
    return data


def _choices(errors: FormErrors, raw: FormData, name: str) -> list[str]:
    chosen = field_texts(raw, name)
    if any(c not in PERSONAL_CATEGORIES for c in chosen):
        errors.add(name, _("Choose among the listed categories."))
    return [c for c in chosen if c in PERSONAL_CATEGORIES]


def _list(errors: FormErrors, raw: FormData, name: str, split: re.Pattern[str]) -> list[str]:
    label, most, longest = LISTS[name]
    text = text_field(errors, name, field_text(raw, name), label=label,
                      max_length=most * (longest + 2), required=False)
    items = [item.strip() for item in split.split(text) if item.strip()]
    if len(items) > most:
        errors.add(name, _("%(label)s: at most %(n)d.") % {"label": _(label), "n": most})
    elif any(len(item) > longest for item in items):
        errors.add(name, _("%(label)s: each at most %(n)d characters.")
                   % {"label": _(label), "n": longest})
    return items


def _time(errors: FormErrors, name: str, raw: str, *, required: bool) -> datetime | None:
    """A time as the browser's field sends it, in UTC."""
    value = raw.strip()
    if not value:
        if required:
            errors.add(name, _("%(label)s: this field is required.")
                       % {"label": _(TIMES[name])})
        return None
    for layout in _TIME_FORMATS:
        try:
            return datetime.strptime(value[:19], layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    errors.add(name, _("Enter a time as YYYY-MM-DD HH:MM (UTC)."))
    return None


def _field_of(refused: TidingsError) -> str:
    """The form's field a refusal names (its ``parameter``), else the form as a whole."""
    parameter = str(refused.extra.get("parameter") or "")
    parameter = _API_NAMES.get(parameter, parameter)
    return parameter if parameter in FIELDS or parameter == "reason" else ""


def _schema_errors(errors: FormErrors, invalid: ValidationError) -> None:
    for error in invalid.errors():
        loc = [str(part) for part in error.get("loc", ())]
        name = ".".join(loc[:2]) if loc[:1] == ["scope"] else (loc[0] if loc else "")
        name = _API_NAMES.get(name, name)
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        errors.add(name if name in FIELDS else "", message[:1].upper() + message[1:])


def _id(raw: str) -> str:
    return raw[:ID_LENGTH]
