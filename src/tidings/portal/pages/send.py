"""Sending one message from a form, with its encoding and number of SMS parts shown as
it is typed (the server's own count, ``connectors/encoding.py``, fetched by htmx).

The form goes through the API's own send path (``messaging/sending.py``: the same
checks, rights, caps and idempotency), so a message sent here is one the API would have
sent. The form carries a key made when the page was drawn and sends it as the
``Idempotency-Key``: a double submit (a second click, a reload that posts again) sends
the message once.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from tidings.connectors.encoding import segment
from tidings.messaging.schemas import Channel, SendMessage
from tidings.messaging.sending import create_one_idempotent, prepare_send
from tidings.portal.deps import PageSendMessages
from tidings.portal.errors import redirect
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/send", include_in_schema=False)
Field = Annotated[str, Form()]
PREVIEW_LIMIT = 10_000  # characters counted for the live preview


@router.get("")
async def send_page(request: Request, principal: PageSendMessages) -> Response:
    return _form(request, principal, {"channel": "sms", "idempotency_key": _new_key()},
                 FormErrors())


@router.post("/preview")
async def preview(request: Request, principal: PageSendMessages, body: Field = "",
                  channel: Field = "sms") -> Response:
    """The encoding and parts of ``body`` as an SMS (htmx, as the person types)."""
    parts = segment(body[:PREVIEW_LIMIT]) if channel == "sms" and body else None
    return render(request, "_segments.html", parts=parts, chars=len(body))


@router.post("")
async def send_submit(request: Request, rt: RuntimeDep, principal: PageSendMessages,
                      to: Field = "", sender: Annotated[str, Form(alias="from")] = "",
                      channel: Field = "sms", body: Field = "", subject: Field = "",
                      idempotency_key: Field = "") -> Response:
    values = {"to": to, "from": sender, "channel": channel, "body": body, "subject": subject,
              "idempotency_key": idempotency_key or _new_key()}
    errors = FormErrors()
    to = text_field(errors, "to", to, label="To", max_length=320)
    sender = text_field(errors, "from", sender, label="From", max_length=320)
    body = text_field(errors, "body", body, label="Message", max_length=100_000, strip=False)
    subject = text_field(errors, "subject", subject, label="Subject", max_length=998,
                         required=channel == "email")
    if channel not in {c.value for c in Channel}:
        errors.add("channel", _("Choose one of the listed channels."))
    key = values["idempotency_key"][:100]
    if errors:
        return _form(request, principal, values, errors, status=400)
    try:
        message = SendMessage.model_validate(
            {"to": to, "from": sender, "channel": channel, "body": body,
             **({"subject": subject} if channel == "email" else {})})
        ctx, draft = await prepare_send(rt, principal, message)
        sent, _replayed = await create_one_idempotent(
            rt, ctx, draft, key=f"portal:{key}",
            request=message.model_dump(mode="json", by_alias=True))
    except ValidationError as invalid:
        schema_errors(errors, invalid, set(values) - {"idempotency_key"})
        return _form(request, principal, values, errors, status=400)
    except TidingsError as refused:
        errors.add(_field_of(refused), refused.detail)
        return _form(request, principal, values, errors, status=refused.status)
    return redirect(request, f"/portal/messages/{sent.id}")


def _field_of(refused: TidingsError) -> str:
    """Which field a refusal of the send path is about, to show it there."""
    code = refused.code
    for field, words in (("to", ("to", "recipient", "destination", "phone")),
                         ("from", ("from", "sender")), ("body", ("body", "message_too")),
                         ("channel", ("channel",))):
        if any(word in code for word in words):
            return field
    return ""


def _form(request: Request, principal: object, values: dict[str, str], errors: FormErrors,
          *, status: int = 200) -> Response:
    parts = segment(values.get("body", "")[:PREVIEW_LIMIT]) if values.get("body") else None
    return render(request, "send.html", principal=principal, values=values, errors=errors,
                  channels=[c.value for c in Channel], parts=parts,
                  chars=len(values.get("body", "")), status=status)


def _new_key() -> str:
    return secrets.token_urlsafe(16)
