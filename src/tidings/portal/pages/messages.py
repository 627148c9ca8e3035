"""The message log: filters, newest first, a page at a time; a message's page with its
timeline and its webhook attempts, refreshed while the message is still moving.

The reads are the API's own (``messaging/service.py``): the ``(tenant_id, id)`` index
walked newest first, a recipient matched through its blind index, never a count of the
whole table. Numbers and bodies follow the reader's role, as in the API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from tidings.accounts.auth import Principal
from tidings.accounts.permissions import Permission
from tidings.core.services import Services
from tidings.messaging.addresses import AddressError, normalize_e164
from tidings.messaging.lifecycle import FINAL, Status
from tidings.messaging.schemas import Channel, Direction
from tidings.messaging.service import (
    MessageFilters,
    cipher_of,
    get_events,
    get_message,
    list_messages,
    message_out,
)
from tidings.messaging.views import as_seen_by
from tidings.portal.deps import PageReadMessages, acting_on
from tidings.portal.forms import FormErrors, date_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.storage.subject_keys import ciphers_of
from tidings.web.deps import RuntimeDep
from tidings.web.errors import NotFound, TidingsError
from tidings.webhooks.service import attempts_of, list_deliveries

router = APIRouter(prefix="/portal/messages", include_in_schema=False)
PAGE_SIZE = 50
MESSAGE_ID = re.compile(r"msg_[0-9a-z]{26}")
ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ACCOUNT_ID = re.compile(r"acc_[0-9a-z]{26}")
REFRESH_SECONDS = 2


@router.get("")
async def message_log(request: Request, rt: RuntimeDep, principal: PageReadMessages) -> Response:
    query = request.query_params
    errors = FormErrors()
    filters = _filters(query, errors)
    reader = await _reader(rt, request, principal, query.get("account", ""), errors)
    rows, next_cursor = [], None
    if not errors:
        keys = await rt.vault.keys_for(reader.tenant)
        try:
            async with rt.db.transaction(tenant=reader.tenant, write=False) as session:
                found, next_cursor = await list_messages(
                    session, tenant=reader.tenant, keys=keys, filters=filters,
                    cursor=query.get("cursor") or None, limit=PAGE_SIZE)
        except TidingsError as refused:
            errors.add("cursor", refused.detail)
        else:
            ciphers = await ciphers_of(keys, found)
            rows = [as_seen_by(message_out(m, ciphers[m.id]), reader.permissions)
                    for m in found]
    next_href = None
    if next_cursor:
        next_href = "/portal/messages?" + urlencode({**dict(query), "cursor": next_cursor})
    return render(request, "messages.html", principal=principal, messages=rows,
                  next_href=next_href, errors=errors, query=dict(query),
                  statuses=[s.value for s in Status], channels=[c.value for c in Channel],
                  status=400 if errors else 200)


@router.get("/{message_id}")
async def message_page(request: Request, rt: RuntimeDep, message_id: str,
                       principal: PageReadMessages, account: str = "") -> Response:
    """A message of the account, or with ``?account=`` of one of its sub-accounts."""
    reader = await _sub_account_reader(rt, request, principal, account)
    context = await _message_context(rt, reader, message_id)
    return render(request, "message.html", principal=principal, account=account, **context)


@router.get("/{message_id}/timeline")
async def message_timeline(request: Request, rt: RuntimeDep, message_id: str,
                           principal: PageReadMessages, account: str = "") -> Response:
    """The moving part of a message's page, which htmx fetches every few seconds until
    the message's status is final."""
    reader = await _sub_account_reader(rt, request, principal, account)
    context = await _message_context(rt, reader, message_id)
    return render(request, "_timeline.html", principal=principal, account=account,
                  **context)


async def _sub_account_reader(rt: Services, request: Request, principal: Principal,
                              account: str) -> Principal:
    errors = FormErrors()
    reader = await _reader(rt, request, principal, account[:40], errors)
    if errors:  # not a sub-account of the reader's: as a message that is not there
        raise NotFound(_("There is no such message."), code="message_not_found")
    return reader


async def _message_context(rt: Services, principal: Principal,
                           message_id: str) -> dict[str, Any]:
    if not MESSAGE_ID.fullmatch(message_id):
        raise NotFound(_("There is no such message."), code="message_not_found")
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        message = await get_message(session, tenant=principal.tenant, message_id=message_id)
        events = await get_events(session, tenant=principal.tenant, message_id=message_id)
        deliveries = []
        if principal.may(Permission.WEBHOOKS_MANAGE):
            listed = await list_deliveries(session, tenant=principal.tenant,
                                           message_id=message_id, status=None, cursor=None,
                                           limit=50)
            attempts = await attempts_of(session, tenant=principal.tenant,
                                         delivery_ids=[d.id for d in listed])
            deliveries = [(d, attempts[d.id]) for d in listed]
    shown = as_seen_by(message_out(message, await cipher_of(keys, message), events),
                       principal.permissions)
    return {"message": shown, "deliveries": deliveries,
            "moving": message.status not in FINAL, "refresh_seconds": REFRESH_SECONDS}


def _filters(query: QueryParams, errors: FormErrors) -> MessageFilters:
    status = _one_of(errors, "status", query.get("status", ""), {s.value for s in Status})
    channel = _one_of(errors, "channel", query.get("channel", ""), {c.value for c in Channel})
    direction = _one_of(errors, "direction", query.get("direction", ""),
                        {d.value for d in Direction})
    to = None
    if raw_to := query.get("to", "").strip():
        try:
            if len(raw_to) > 64:
                raise AddressError("too long", code="invalid_phone_number")
            to = normalize_e164(raw_to)
        except AddressError:
            errors.add("to", _("Enter the number in international form, e.g. +12025550173."))
    error_code = query.get("error_code", "").strip() or None
    if error_code and not ERROR_CODE.fullmatch(error_code):
        errors.add("error_code", _("That is not an error code."))
        error_code = None
    after = date_field(errors, "from", query.get("from", ""))
    before = date_field(errors, "until", query.get("until", ""))
    return MessageFilters(
        status=status, to=to, channel=channel, direction=direction, error_code=error_code,
        created_after=datetime.combine(after, time(), UTC) if after else None,
        created_before=datetime.combine(before + timedelta(days=1), time(), UTC)
        if before else None)


def _one_of(errors: FormErrors, name: str, raw: str, allowed: set[str]) -> str | None:
    if not raw:
        return None
    if raw not in allowed:
        errors.add(name, _("Choose one of the listed values."))
        return None
    return raw


async def _reader(rt: Services, request: Request, principal: Principal, account: str,
                  errors: FormErrors) -> Principal:
    """The principal to list with: the person's own account, or a sub-account of it."""
    if not account or account == principal.tenant:
        return principal
    if not ACCOUNT_ID.fullmatch(account):
        errors.add("account", _("That is not an account id."))
        return principal
    try:
        return await acting_on(request, rt, account, Permission.MESSAGES_READ)
    except TidingsError:
        errors.add("account", _("There is no such sub-account."))
        return principal
