"""Privacy: the account's queue of data subject requests (those still open first, by
due date, the overdue marked), recording one, a request's page with its deadline, its
outcome and what a person decides (extend, complete an objection, reject), its bundle
to download; legal holds placed and released, restrictions lifted.

Each action is the API's own (``privacy/api.py``), so a page can do exactly what
``/v1/privacy/...`` can, with the same checks, audit events and notices.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.core.services import Services
from tidings.portal.deps import PageManagePrivacy
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.privacy import bundles
from tidings.privacy.api import (
    complete_endpoint,
    create_request,
    extend_endpoint,
    get_endpoint,
    lift_restriction,
    list_holds_endpoint,
    list_restrictions_endpoint,
    load_bundle,
    place_hold_endpoint,
    reject_endpoint,
    release_hold_endpoint,
    request_out,
)
from tidings.privacy.requests import (
    OPEN_STATUSES,
    RequestStatus,
    RequestType,
    list_requests,
    parse_subject,
)
from tidings.privacy.retention_api import retention_of, set_retention
from tidings.privacy.schemas import (
    CompleteRequest,
    CreateRequest,
    ExtendRequest,
    PlaceHold,
    RejectRequest,
    RequestOut,
    SetRetention,
)
from tidings.web.deps import RuntimeDep
from tidings.web.errors import NotFound, TidingsError

router = APIRouter(prefix="/portal/privacy", include_in_schema=False)
Field = Annotated[str, Form()]

TYPES = [t.value for t in RequestType]
STATUSES = [s.value for s in RequestStatus]
OPEN = "open"  # the queue's filter: the requests still to answer
KINDS = ("number", "email")
# As ``schemas.SubjectIn`` takes them.
ADDRESS_LIMITS = {"number": 40, "email": 254}
MONTHS = ("1", "2")
WITH_BUNDLE = (RequestType.ACCESS.value, RequestType.PORTABILITY.value)
DECIDED_BY_A_PERSON = (RequestType.OBJECTION.value,)
# Longest id of a request, a hold or a restriction: a path longer is none of them.
ID_LENGTH = 40
# What an outcome's keys mean, in the order shown; others are shown as they are.
OUTCOME_LABELS = {
    "messages": "Messages",
    "bundle_expires_at": "Bundle kept until",
    "restriction_id": "Restriction",
    "hold_id": "Legal hold",
    "hold_basis": "Basis of the hold",
    "subject_token": "Erased key's token",
    "extension_months": "Months of extension",
    "resolution": "Resolution",
    "reason": "Reason for refusal",
}


# --------------------------------------------------------------------------- the queue


@router.get("")
async def queue_page(request: Request, rt: RuntimeDep,
                     principal: PageManagePrivacy) -> Response:
    errors = FormErrors()
    status = request.query_params.get("status", "")
    if status and status not in (OPEN, *STATUSES):
        errors.add("status", _("Choose one of the listed statuses."))
        status = ""
    return await _queue(request, rt, principal, errors, status=status,
                        recorded=request.query_params.get("recorded") == "1",
                        code=400 if errors else 200)


@router.post("/requests")
async def create(request: Request, rt: RuntimeDep, principal: PageManagePrivacy,
                 type: Field = "", subject_kind: Field = "", subject: Field = "",
                 note: Field = "", rectify_to: Field = "") -> Response:
    errors = FormErrors()
    form = {"type": type[:40], "subject_kind": subject_kind[:40]}
    if type not in TYPES:
        errors.add("type", _("Choose one of the listed types of request."))
    if subject_kind not in KINDS:
        errors.add("subject_kind", _("Choose a number or an e-mail address."))
    limit = ADDRESS_LIMITS.get(subject_kind, max(ADDRESS_LIMITS.values()))
    form["subject"] = text_field(errors, "subject", subject, label="Number or address",
                                 max_length=limit)
    form["note"] = text_field(errors, "note", note, label="What the person asked",
                              max_length=2000, required=False)
    rectify = type == RequestType.RECTIFICATION.value
    form["rectify_to"] = rectify_to[:limit]
    if rectify:  # the correct address: asked of a rectification only
        form["rectify_to"] = text_field(errors, "rectify_to", rectify_to,
                                        label="Correct number or address", max_length=limit)
    _check_address(errors, "subject", subject_kind, form["subject"])
    if rectify:
        _check_address(errors, "rectify_to", subject_kind, form["rectify_to"])
    if not errors:
        try:
            body = CreateRequest.model_validate({
                "type": type, "subject": {subject_kind: form["subject"]},
                "note": form["note"] or None,
                "rectify_to": {subject_kind: form["rectify_to"]} if rectify else None})
            await create_request(rt, tenant=principal.tenant, body=body, source="portal",
                                 actor=principal.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"type", "subject", "note", "rectify_to"})
        except TidingsError as refused:
            errors.add(_field_of(refused, {"subject", "note", "rectify_to"}), refused.detail)
        else:
            return redirect(request, "/portal/privacy?recorded=1")
    return await _queue(request, rt, principal, errors, form=form, code=400)


def _check_address(errors: FormErrors, name: str, kind: str, value: str) -> None:
    """The address as the domain parses it (``requests.parse_subject``), its complaint
    beside the field."""
    if name in errors or kind not in KINDS or not value:
        return
    try:
        parse_subject(number=value if kind == "number" else None,
                      email=value if kind == "email" else None)
    except TidingsError as refused:
        errors.add(name, refused.detail)


def _field_of(refused: TidingsError, fields: set[str]) -> str:
    """The form's field a refusal names (its ``parameter``, ``subject.number`` being the
    subject's), else the form as a whole."""
    parameter = str(refused.extra.get("parameter") or "").split(".")[0]
    return parameter if parameter in fields else ""


async def _queue(request: Request, rt: Services, principal: Principal, errors: FormErrors,
                 *, status: str = "", form: dict[str, str] | None = None,
                 recorded: bool = False, hold: dict[str, str] | None = None,
                 retention_days: str | None = None, code: int = 200) -> Response:
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        if status == OPEN:
            rows = list(await list_requests(session, tenant=principal.tenant, open_only=True))
        elif status:
            rows = list(await list_requests(session, tenant=principal.tenant, status=status))
        else:  # those still to answer first, then the rest
            rows = list(await list_requests(session, tenant=principal.tenant, open_only=True))
            shown = {row.id for row in rows}
            rows += [row for row in await list_requests(session, tenant=principal.tenant)
                     if row.id not in shown]
    now = rt.clock.now()
    requests = sorted((request_out(keys, row, now) for row in rows), key=_queue_order)
    holds = await list_holds_endpoint(rt, principal)
    restrictions = await list_restrictions_endpoint(rt, principal)
    retention = await retention_of(rt, tenant=principal.tenant)
    return render(request, "privacy.html", principal=principal, requests=requests,
                  holds=holds, restrictions=restrictions, errors=errors, chosen_status=status,
                  retention=retention, retention_days=retention_days if retention_days
                  is not None else (str(retention.message_body_days) if retention.chosen
                                    else ""),
                  statuses=[OPEN, *STATUSES], types=TYPES, kinds=KINDS,
                  form=form or {"type": "", "subject_kind": "number"},
                  hold=hold or {"hold_kind": "number"}, recorded=recorded,
                  open_statuses=OPEN_STATUSES, today=now.date(), status=code)


def _queue_order(out: RequestOut) -> tuple[bool, float]:
    """Open before closed; open ones due first, closed ones latest received first."""
    if out.status in OPEN_STATUSES:
        return False, out.due_at.timestamp()
    return True, -out.received_at.timestamp()


# --------------------------------------------------------------------------- a request


@router.get("/requests/{request_id}")
async def request_page(request: Request, rt: RuntimeDep, request_id: str,
                       principal: PageManagePrivacy) -> Response:
    return await _request(request, rt, principal, request_id, FormErrors())


@router.post("/requests/{request_id}/extend")
async def extend(request: Request, rt: RuntimeDep, request_id: str,
                 principal: PageManagePrivacy, months: Field = "",
                 extension_reason: Field = "") -> Response:
    errors = FormErrors()
    if months not in MONTHS:
        errors.add("months", _("Choose one or two months."))
    reason = text_field(errors, "extension_reason", extension_reason, label="Reason",
                        max_length=500)
    if not errors:
        try:
            await extend_endpoint(_id(request_id), ExtendRequest.model_validate(
                {"months": int(months), "reason": reason}), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except NotFound:
            raise
        except TidingsError as refused:
            field = _field_of(refused, {"reason", "due_at"})
            errors.add({"reason": "extension_reason", "due_at": "months"}.get(field, ""),
                       refused.detail)
        else:
            return redirect(request, f"/portal/privacy/requests/{_id(request_id)}")
    return await _request(request, rt, principal, request_id, errors,
                          form={"months": months[:1], "extension_reason": reason}, code=400)


@router.post("/requests/{request_id}/complete")
async def complete(request: Request, rt: RuntimeDep, request_id: str,
                   principal: PageManagePrivacy, resolution: Field = "") -> Response:
    errors = FormErrors()
    note = text_field(errors, "resolution", resolution, label="Resolution", max_length=500)
    if not errors:
        try:
            await complete_endpoint(_id(request_id), CompleteRequest.model_validate(
                {"note": note}), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add("resolution" if _field_of(refused, {"note"}) else "", refused.detail)
        else:
            return redirect(request, f"/portal/privacy/requests/{_id(request_id)}")
    return await _request(request, rt, principal, request_id, errors,
                          form={"resolution": note}, code=400)


@router.post("/requests/{request_id}/reject")
async def reject(request: Request, rt: RuntimeDep, request_id: str,
                 principal: PageManagePrivacy, rejection_reason: Field = "") -> Response:
    errors = FormErrors()
    reason = text_field(errors, "rejection_reason", rejection_reason, label="Reason",
                        max_length=500)
    if not errors:
        try:
            await reject_endpoint(_id(request_id), RejectRequest.model_validate(
                {"reason": reason}), rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add("rejection_reason" if _field_of(refused, {"reason"}) else "",
                       refused.detail)
        else:
            return redirect(request, f"/portal/privacy/requests/{_id(request_id)}")
    return await _request(request, rt, principal, request_id, errors,
                          form={"rejection_reason": reason}, code=400)


@router.get("/requests/{request_id}/bundle.json")
async def bundle_json(request_id: str, rt: RuntimeDep,
                      principal: PageManagePrivacy) -> Response:
    content = await load_bundle(rt, tenant=principal.tenant, request_id=_id(request_id))
    return JSONResponse(content, headers=_attachment(request_id, "json"))


@router.get("/requests/{request_id}/bundle.html")
async def bundle_html(request_id: str, rt: RuntimeDep,
                      principal: PageManagePrivacy) -> Response:
    content = await load_bundle(rt, tenant=principal.tenant, request_id=_id(request_id))
    return HTMLResponse(bundles.render_html(content), headers=_attachment(request_id, "html"))


def _attachment(request_id: str, extension: str) -> dict[str, str]:
    # The id was found in the account's requests: letters, digits and "_" only.
    return {"Content-Disposition": f'attachment; filename="{_id(request_id)}.{extension}"'}


def _id(raw: str) -> str:
    return raw[:ID_LENGTH]


async def _request(request: Request, rt: Services, principal: Principal, request_id: str,
                   errors: FormErrors, *, form: dict[str, str] | None = None,
                   code: int = 200) -> Response:
    """A request's page; 404 for one that is not the account's, as the API answers."""
    out = await get_endpoint(_id(request_id), rt, principal)
    now = rt.clock.now()
    is_open = out.status in OPEN_STATUSES
    return render(request, "privacy_request.html", principal=principal, dsr=out,
                  errors=errors, form=form or {}, is_open=is_open,
                  deadline=_deadline(out, now), outcome=_outcome(out.outcome),
                  notices=_notices(out.outcome),
                  may_complete=is_open and out.type in DECIDED_BY_A_PERSON,
                  has_bundle=out.type in WITH_BUNDLE
                  and out.status == RequestStatus.COMPLETED.value,
                  months=MONTHS, status=code)


def _deadline(out: RequestOut, now: datetime) -> str:
    """What is left before the due date, in days, for an open request."""
    if out.status not in OPEN_STATUSES:
        return ""
    if out.overdue:
        days = (now.date() - out.due_at.date()).days
        return _("overdue") if days < 1 else (
            _("overdue by 1 day") if days == 1 else _("overdue by %(days)d days")
            % {"days": days})
    days = (out.due_at.date() - now.date()).days
    if days < 1:
        return _("due today")
    return _("1 day left") if days == 1 else _("%(days)d days left") % {"days": days}


def _outcome(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """An outcome's facts (not its notices), labelled."""
    known = [(_(label), outcome[key]) for key, label in OUTCOME_LABELS.items()
             if key in outcome]
    other = [(key, outcome[key]) for key in sorted(outcome)
             if key not in OUTCOME_LABELS and key != "notices"]
    return [(label, _shown(value)) for label, value in known + other]


def _notices(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """The notices to the person recorded: (kind, when)."""
    found = outcome.get("notices")
    if not isinstance(found, list):
        return []
    return [(str(n.get("kind", "")), _shown(n.get("at", ""))) for n in found
            if isinstance(n, dict)]


def _shown(value: Any) -> str:
    """A value of an outcome as text; a time to the minute."""
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" \
            and value[10:11] == "T":
        return value[:16].replace("T", " ")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------- holds


@router.post("/holds")
async def place_hold(request: Request, rt: RuntimeDep, principal: PageManagePrivacy,
                     hold_kind: Field = "", hold_subject: Field = "",
                     basis: Field = "") -> Response:
    errors = FormErrors()
    hold = {"hold_kind": hold_kind[:40]}
    if hold_kind not in KINDS:
        errors.add("hold_kind", _("Choose a number or an e-mail address."))
    hold["hold_subject"] = text_field(
        errors, "hold_subject", hold_subject, label="Number or address",
        max_length=ADDRESS_LIMITS.get(hold_kind, max(ADDRESS_LIMITS.values())))
    hold["basis"] = text_field(errors, "basis", basis, label="Basis", max_length=500)
    _check_address(errors, "hold_subject", hold_kind, hold["hold_subject"])
    if not errors:
        try:
            await place_hold_endpoint(PlaceHold.model_validate({
                "subject": {hold_kind: hold["hold_subject"]}, "basis": hold["basis"]}),
                rt, principal)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"basis"})
        except TidingsError as refused:
            field = _field_of(refused, {"subject", "basis"})
            errors.add({"subject": "hold_subject", "basis": "basis"}.get(field, "hold"),
                       refused.detail)
        else:
            return redirect(request, "/portal/privacy#holds")
    return await _queue(request, rt, principal, errors, hold=hold, code=400)


@router.post("/holds/{hold_id}/release")
async def release_hold(request: Request, rt: RuntimeDep, hold_id: str,
                       principal: PageManagePrivacy) -> Response:
    try:
        await release_hold_endpoint(_id(hold_id), rt, principal)
    except NotFound:
        raise
    except TidingsError as refused:
        return await _queue(request, rt, principal, FormErrors().add("", refused.detail),
                            code=refused.status)
    return redirect(request, "/portal/privacy#holds")


# --------------------------------------------------------------------------- restrictions


@router.post("/restrictions/{restriction_id}/lift")
async def lift(request: Request, rt: RuntimeDep, restriction_id: str,
               principal: PageManagePrivacy) -> Response:
    try:
        await lift_restriction(rt, tenant=principal.tenant, restriction_id=_id(restriction_id),
                               actor=principal.actor)
    except NotFound:
        raise
    except TidingsError as refused:
        return await _queue(request, rt, principal, FormErrors().add("", refused.detail),
                            code=refused.status)
    return redirect(request, "/portal/privacy#restrictions")


# --------------------------------------------------------------------------- retention


@router.post("/retention")
async def set_retention_page(request: Request, rt: RuntimeDep, principal: PageManagePrivacy,
                             message_body_days: Field = "") -> Response:
    """Empty: back to the platform's default; else days within the platform's limits."""
    errors = FormErrors()
    raw = message_body_days.strip()[:10]
    days: int | None = None
    if raw:
        if not raw.isdigit():
            errors.add("message_body_days", _("Give a whole number of days, or nothing "
                                              "for the platform's default."))
        else:
            days = int(raw)
    if not errors:
        try:
            await set_retention(rt, tenant=principal.tenant,
                                body=SetRetention.model_validate({"message_body_days": days}),
                                actor=principal.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, {"message_body_days"})
        except TidingsError as refused:
            errors.add("message_body_days", refused.detail)
        else:
            return redirect(request, "/portal/privacy#retention")
    return await _queue(request, rt, principal, errors, retention_days=raw, code=400)
