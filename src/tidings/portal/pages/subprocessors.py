"""The sub-processors, for a client's people (``/portal/privacy/subprocessors``) and for
anyone (``/subprocessors``).

A client's page lists the register as ``/v1/subprocessors`` gives it: those in use,
those coming with the date each applies to this account (its own notice's, which is
later for a client told late), and the former ones; this account's notice and
objection. A person who may manage the account's privacy objects there to one that is
coming; objections are the top account's, whose notice governs its sub-accounts.

The public page is the register at this instant, as ``/v1/public/subprocessors`` has
it, and nothing of any account.

Each action is the API's own (``subprocessors/api.py``), with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.accounts.models import Account
from tidings.accounts.permissions import Permission
from tidings.core.services import Services
from tidings.portal.deps import PageManagePrivacy, PageMember
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, text_field
from tidings.portal.templating import render
from tidings.subprocessors.api import client_entries, object_to, public_register
from tidings.subprocessors.models import Status
from tidings.subprocessors.schemas import ClientSubprocessorOut
from tidings.web.deps import RuntimeDep, public
from tidings.web.errors import NotFound, TidingsError

router = APIRouter(prefix="/portal/privacy/subprocessors", include_in_schema=False)
public_router = APIRouter(prefix="/subprocessors", include_in_schema=False)
Field = Annotated[str, Form()]
ID_LENGTH = 40  # an entry's id; a path longer is none
REASON_LENGTH = 2000  # as ``schemas.ObjectionIn``


@dataclass(frozen=True)
class Shown:
    """An entry as this account sees it."""

    entry: ClientSubprocessorOut
    applies_from: datetime | None  # when it applies to this account (None: retired)
    may_object: bool


# --------------------------------------------------------------------------- the client


@router.get("")
async def list_page(request: Request, rt: RuntimeDep, principal: PageMember) -> Response:
    return await _list(request, rt, principal, FormErrors(),
                       objected=request.query_params.get("objected", "")[:ID_LENGTH])


@router.post("/{sub_id}/objection")
async def object_page(request: Request, rt: RuntimeDep, sub_id: str,
                      principal: PageManagePrivacy, reason: Field = "") -> Response:
    errors = FormErrors()
    entry_id = sub_id[:ID_LENGTH]
    field = f"reason-{entry_id}"
    cleaned = text_field(errors, field, reason.replace("\r\n", "\n"), label="Your reason",
                         max_length=REASON_LENGTH)
    if not errors:
        try:
            await object_to(rt, principal.tenant, entry_id, cleaned, principal.actor)
        except NotFound:
            raise
        except TidingsError as refused:
            errors.add(field if refused.extra.get("parameter") == "reason" else "",
                       refused.detail)
        else:
            return redirect(request, f"/portal/privacy/subprocessors?objected={entry_id}"
                                     f"#sub-{entry_id}")
    return await _list(request, rt, principal, errors,
                       reasons={entry_id: cleaned[:REASON_LENGTH]}, status=400)


async def _list(request: Request, rt: Services, principal: Principal, errors: FormErrors, *,
                objected: str = "", reasons: dict[str, str] | None = None,
                status: int = 200) -> Response:
    """The register for ``principal``'s account; a 404 for an entry id that is none
    (an objection's form sent to it), as the API answers."""
    entries = await client_entries(rt, principal.tenant)
    if reasons and not any(e.id in reasons for e in entries):
        raise NotFound(f"No sub-processor {next(iter(reasons))!r}.",
                       code="subprocessor_not_found")
    sub_account = await _is_sub_account(rt, principal.tenant)
    may_object = principal.may(Permission.PRIVACY_MANAGE) and not sub_account
    now = rt.clock.now()
    shown = [_shown(entry, now, may_object=may_object) for entry in entries]
    _unplaced_to_top(errors, {s.entry.id for s in shown if s.may_object})
    return render(request, "subprocessors.html", principal=principal, errors=errors,
                  current=[s for s in shown if _group(s, now) == "current"],
                  upcoming=[s for s in shown if _group(s, now) == "upcoming"],
                  former=[s for s in shown if _group(s, now) == "former"],
                  sub_account=sub_account, manages=principal.may(Permission.PRIVACY_MANAGE),
                  objected=objected, reasons=reasons or {}, reason_max=REASON_LENGTH,
                  status=status)


def _unplaced_to_top(errors: FormErrors, with_form: set[str]) -> None:
    """A complaint about a reason whose form is not shown (the time to object ended
    meanwhile) has no field to sit beside: it goes to the top of the page."""
    for key in [k for k in errors if k.startswith("reason-")]:
        if key.removeprefix("reason-") not in with_form:
            errors.add("", errors.pop(key))


def _shown(entry: ClientSubprocessorOut, now: datetime, *, may_object: bool) -> Shown:
    """When it applies to this account, and whether the account may still object: the
    same conditions as ``notices.do_object``."""
    if entry.status == Status.RETIRED.value:
        return Shown(entry, None, False)
    applies_from = entry.notice.effective_at if entry.notice else entry.effective_at
    open_ = applies_from is not None and now < applies_from
    objected = entry.notice is not None and entry.notice.objected_at is not None
    return Shown(entry, applies_from, may_object and open_ and not objected)


def _group(shown: Shown, now: datetime) -> str:
    """Former when retired; coming while the account's own date is ahead; else in use."""
    if shown.applies_from is None:
        return "former"
    return "upcoming" if now < shown.applies_from else "current"


async def _is_sub_account(rt: Services, tenant: str) -> bool:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        account = await session.get(Account, tenant)
    return account is not None and account.parent_id is not None


# --------------------------------------------------------------------------- everyone


@public_router.get("", dependencies=[public])
async def public_page(request: Request, rt: RuntimeDep) -> Response:
    return render(request, "subprocessors_public.html", register=await public_register(rt))
