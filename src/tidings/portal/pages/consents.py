"""Consents: a person's consent events and the state in force, found by their number or
e-mail address; recording an event (an opt-in with its proof, an opt-out); importing a
CSV of events, with each refused row reported.

Each action is the API's own (``consents/api.py``), so a page can do exactly what
``/v1/consents`` can, with the same checks and audit events.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, UploadFile
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.consents.api import consent_history, import_consents, record_consent
from tidings.consents.rules import ConsentChannel
from tidings.consents.schemas import (
    ConsentHistoryOut,
    ConsentImportOut,
    ConsentMechanismIn,
    ConsentSourceIn,
    RecordConsent,
    RowError,
)
from tidings.core.services import Services
from tidings.portal.deps import PageManageConsents
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/consents", include_in_schema=False)
Field = Annotated[str, Form()]

KINDS = ("number", "email")
ADDRESS_LIMITS = {"number": 40, "email": 254}  # as ``RecordConsent`` takes them
CHANNELS = tuple(c.value for c in ConsentChannel)
PURPOSES = ("marketing", "transactional")
MECHANISMS = tuple(m.value for m in ConsentMechanismIn)
SOURCES = tuple(s.value for s in ConsentSourceIn)
# The record form's fields that are the body's own; the person is ``subject``.
BODY_FIELDS = {"channel", "purpose", "mechanism", "source", "evidence_ref", "text_version",
               "text_sha256"}
ERRORS_SHOWN = 100


# --------------------------------------------------------------------------- a person


@router.get("")
async def consents_page(request: Request, rt: RuntimeDep,
                        principal: PageManageConsents) -> Response:
    query = request.query_params
    find = {"find_kind": query.get("find_kind", "number")[:10],
            "find": query.get("find", "")[:300], "find_channel": query.get("find_channel", "")[:20]}
    errors = FormErrors()
    found = await _lookup(rt, principal, errors, find) if find["find"] else None
    return _page(request, principal, errors, find=find, found=found,
                 recorded=query.get("recorded") == "1", status=400 if errors else 200)


async def _lookup(rt: Services, principal: Principal, errors: FormErrors,
                  find: dict[str, str]) -> ConsentHistoryOut | None:
    """The person's history, or the complaint beside the search's field."""
    kind, channel = find["find_kind"], find["find_channel"]
    if kind not in KINDS:
        errors.add("find_kind", _("Choose a number or an e-mail address."))
    if channel and channel not in CHANNELS:
        errors.add("find_channel", _("Choose one of the listed channels."))
    address = text_field(errors, "find", find["find"], label="Number or address",
                         max_length=ADDRESS_LIMITS.get(kind, max(ADDRESS_LIMITS.values())))
    if errors:
        return None
    try:
        return await consent_history(
            rt, tenant=principal.tenant, number=address if kind == "number" else None,
            email=address if kind == "email" else None,
            channel=ConsentChannel(channel) if channel else None)
    except TidingsError as refused:
        field = str(refused.extra.get("parameter") or "")
        errors.add("find_channel" if field == "channel" else "find", refused.detail)
        return None


# --------------------------------------------------------------------------- recording


@router.post("")
async def record(request: Request, rt: RuntimeDep, principal: PageManageConsents,
                 subject_kind: Field = "", subject: Field = "", channel: Field = "",
                 purpose: Field = "", mechanism: Field = "", source: Field = "",
                 evidence_ref: Field = "", text_version: Field = "",
                 text_sha256: Field = "") -> Response:
    errors = FormErrors()
    form = {"subject_kind": subject_kind[:10], "channel": channel[:20],
            "purpose": purpose[:20], "mechanism": mechanism[:20], "source": source[:20]}
    _choice(errors, "subject_kind", subject_kind, KINDS,
            _("Choose a number or an e-mail address."))
    _choice(errors, "channel", channel, CHANNELS, _("Choose one of the listed channels."))
    _choice(errors, "purpose", purpose, PURPOSES, _("Choose marketing or transactional."))
    _choice(errors, "mechanism", mechanism, MECHANISMS, _("Choose one of the listed events."))
    _choice(errors, "source", source, SOURCES, _("Choose where the consent was captured."))
    form["subject"] = text_field(
        errors, "subject", subject, label="Their number or address",
        max_length=ADDRESS_LIMITS.get(subject_kind, max(ADDRESS_LIMITS.values())))
    form["evidence_ref"] = text_field(errors, "evidence_ref", evidence_ref, label="Evidence",
                                      max_length=500)
    form["text_version"] = text_field(errors, "text_version", text_version,
                                      label="Version of the consent text", max_length=40,
                                      required=False)
    form["text_sha256"] = text_field(errors, "text_sha256", text_sha256,
                                     label="SHA-256 of the consent text", max_length=64,
                                     required=False)
    if not errors:
        try:
            made = await record_consent(rt, tenant=principal.tenant, body=_body(form),
                                        actor=principal.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, BODY_FIELDS)
        except TidingsError as refused:
            errors.add(_field_of(refused), refused.detail)
        else:
            [(kind, address)] = made.subject.items()
            return redirect(request, "/portal/consents?" + urlencode(
                {"find_kind": kind, "find": address, "recorded": "1"}))
    return _page(request, principal, errors, form=form, status=400)


def _choice(errors: FormErrors, name: str, value: str, allowed: tuple[str, ...],
            message: str) -> None:
    if value not in allowed:
        errors.add(name, message)


def _body(form: dict[str, str]) -> RecordConsent:
    fields: dict[str, Any] = {name: form[name] for name in BODY_FIELDS if form[name]}
    fields[form["subject_kind"]] = form["subject"]
    return RecordConsent.model_validate(fields)


def _field_of(refused: TidingsError) -> str:
    """The form's field a refusal names: the person's, one of the body's, else none."""
    parameter = str(refused.extra.get("parameter") or "")
    if parameter in ("number", "email", "subject"):
        return "subject"
    return parameter if parameter in BODY_FIELDS else ""


# --------------------------------------------------------------------------- importing


@router.post("/imports")
async def upload(request: Request, rt: RuntimeDep, principal: PageManageConsents,
                 file: UploadFile | None = None) -> Response:
    errors = FormErrors()
    raw = await _read(errors, file, rt.settings.max_body_bytes)
    if raw is None:
        return _page(request, principal, errors, status=400)
    try:
        report = await import_consents(rt, tenant=principal.tenant, raw=raw,
                                       actor=principal.actor)
    except TidingsError as refused:
        if refused.code != "no_rows_imported":
            errors.add("file", refused.detail)
            return _page(request, principal, errors, status=400)
        rows = [RowError.model_validate(e) for e in refused.extra.get("row_errors", [])]
        report = ConsentImportOut(imported=0, refused=int(refused.extra.get("refused", 0)),
                                  errors=rows)
        return _page(request, principal, errors, report=report, status=400)
    return _page(request, principal, errors, report=report)


async def _read(errors: FormErrors, file: UploadFile | None, limit: int) -> bytes | None:
    if file is None or not file.filename:
        errors.add("file", _("Choose a CSV file."))
        return None
    raw = await file.read(limit + 1)
    if len(raw) > limit:
        errors.add("file", _("The file is larger than %(mb)d MB: split it.")
                   % {"mb": limit // (1024 * 1024)})
        return None
    return raw


def _page(request: Request, principal: Principal, errors: FormErrors, *,
          find: dict[str, str] | None = None, found: ConsentHistoryOut | None = None,
          form: dict[str, str] | None = None, report: ConsentImportOut | None = None,
          recorded: bool = False, status: int = 200) -> Response:
    shown = report.errors[:ERRORS_SHOWN] if report else []
    return render(request, "consents.html", principal=principal, errors=errors,
                  find=find or {"find_kind": "number"}, found=found,
                  form=form or {"subject_kind": "number", "channel": "sms",
                                "purpose": "marketing", "mechanism": "opt_in",
                                "source": "web_form"},
                  report=report, row_errors=shown,
                  more_row_errors=len(report.errors) - len(shown) if report else 0,
                  recorded=recorded, kinds=KINDS, channels=CHANNELS, purposes=PURPOSES,
                  mechanisms=MECHANISMS, sources=SOURCES, status=status)
