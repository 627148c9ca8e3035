"""Policy versions in the operator's console (``/operator/policies``), for staff: the
versions published with the clients' answers counted, publishing a new one (every
client is mailed a notice and has a month to object), a version's page with each
account's answer and proof of notice, and the resolution of each objection.

Each action is the operator API's own (``policies/api.py``), so the page does exactly
what ``/v1/operator/policies`` does, with the same checks. A form's fields are read as
text and checked here, each complaint beside its field, nothing written on any.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.core.services import Services
from tidings.operators.deps import Operator
from tidings.policies.api import fetch_version, fetch_versions, publish, resolve
from tidings.policies.notifying import KIND_NAMES
from tidings.policies.rules import earliest_effective_at
from tidings.policies.schemas import (
    NOTE_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    TEXT_MAX_CHARS,
    TITLE_MAX_CHARS,
    VERSION_PATTERN,
    PublishPolicy,
    ResolveObjection,
)
from tidings.portal.deps import StaffMember
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import NotFound, TidingsError

router = APIRouter(prefix="/operator/policies", include_in_schema=False)
Field = Annotated[str, Form()]
OUTCOMES = ("withdrawn", "terminating", "upheld")
FIELDS = ("kind", "version", "title", "summary", "text", "effective_at")
ID_LENGTH = 40
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- the versions


@router.get("")
async def versions_page(request: Request, rt: RuntimeDep, operator: StaffMember) -> Response:
    return await _versions(request, rt, operator, FormErrors(), form={})


@router.post("")
async def publish_version(request: Request, rt: RuntimeDep, operator: StaffMember,
                          kind: Field = "", version: Field = "", title: Field = "",
                          summary: Field = "", text: Field = "",
                          effective_at: Field = "") -> Response:
    errors = FormErrors()
    form = {"kind": kind[:20], "version": version[:40], "title": title[:TITLE_MAX_CHARS],
            "summary": summary[:SUMMARY_MAX_CHARS], "text": text[:TEXT_MAX_CHARS],
            "effective_at": effective_at[:19]}
    if kind not in KIND_NAMES:
        errors.add("kind", _("Choose one of the listed policies."))
    label = text_field(errors, "version", version, label="Version", max_length=40)
    if label and "version" not in errors and not re.fullmatch(VERSION_PATTERN, label):
        errors.add("version", _("Version: letters, digits and . _ - only, as 2027-01."))
    text_field(errors, "title", title, label="Title", max_length=TITLE_MAX_CHARS)
    text_field(errors, "summary", summary, label="What changes", max_length=SUMMARY_MAX_CHARS)
    text_field(errors, "text", text, label="The whole text", max_length=TEXT_MAX_CHARS,
               strip=False)
    effective = _time(errors, "effective_at", effective_at)
    if not errors:
        try:
            made = await publish(rt, PublishPolicy.model_validate({
                "kind": kind, "version": label, "title": title,
                "summary": summary, "text": text, "effective_at": effective}),
                actor=operator.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set(FIELDS))
        except TidingsError as refused:
            parameter = str(refused.extra.get("parameter") or "")
            errors.add(parameter if parameter in FIELDS else "", refused.detail)
        else:
            return redirect(request, f"/operator/policies/{made.id}")
    return await _versions(request, rt, operator, errors, form=form, status=400)


async def _versions(request: Request, rt: Services, operator: Operator, errors: FormErrors,
                    *, form: dict[str, str], status: int = 200) -> Response:
    earliest = earliest_effective_at(rt.clock.now())
    return render(request, "operator/policies.html", principal=None, staff=operator,
                  versions=await fetch_versions(rt), errors=errors, kinds=KIND_NAMES,
                  form=form, earliest=earliest, status=status)


def _time(errors: FormErrors, name: str, raw: str) -> datetime | None:
    """A time as the browser's field sends it, in UTC; None when left empty."""
    value = raw.strip()
    if not value:
        return None
    for layout in _TIME_FORMATS:
        try:
            return datetime.strptime(value[:19], layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    errors.add(name, _("Enter a time as YYYY-MM-DD HH:MM (UTC)."))
    return None


# --------------------------------------------------------------------------- a version


@router.get("/{version_id}")
async def version_page(request: Request, rt: RuntimeDep, version_id: str,
                       operator: StaffMember) -> Response:
    return await _version(request, rt, operator, version_id, FormErrors())


@router.post("/{version_id}/objections/{account_id}/resolution")
async def resolve_objection(request: Request, rt: RuntimeDep, version_id: str,
                            account_id: str, operator: StaffMember, outcome: Field = "",
                            note: Field = "") -> Response:
    errors = FormErrors()
    account = account_id[:ID_LENGTH]
    if outcome not in OUTCOMES:
        errors.add(f"outcome-{account}", _("Choose one of the listed outcomes."))
    cleaned = text_field(errors, f"note-{account}", note, label="Note",
                         max_length=NOTE_MAX_CHARS, required=False)
    if not errors:
        try:
            await resolve(rt, _id(version_id), account, ResolveObjection.model_validate(
                {"outcome": outcome, "note": cleaned or None}), actor=operator.actor)
        except ValidationError as invalid:
            schema_errors(errors, invalid, set())
        except NotFound:
            raise
        except TidingsError as refused:
            field = f"note-{account}" if refused.extra.get("parameter") == "note" else ""
            errors.add(field, refused.detail)
        else:
            return redirect(request, f"/operator/policies/{_id(version_id)}#responses")
    return await _version(request, rt, operator, version_id, errors,
                          resolving={"account": account, "outcome": outcome[:20],
                                     "note": cleaned[:NOTE_MAX_CHARS]}, status=400)


async def _version(request: Request, rt: Services, operator: Operator, version_id: str,
                   errors: FormErrors, *, resolving: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
    """A version's page; 404 for an id that is none, as the API answers."""
    out = await fetch_version(rt, _id(version_id))
    return render(request, "operator/policy.html", principal=None, staff=operator,
                  version=out, errors=errors, kinds=KIND_NAMES, outcomes=OUTCOMES,
                  resolving=resolving or {}, status=status)


def _id(raw: str) -> str:
    return raw[:ID_LENGTH]
