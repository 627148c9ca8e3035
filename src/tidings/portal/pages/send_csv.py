"""Sending to a CSV of recipients: the browser shows the file's first rows before it is
sent (``static/portal.js``) and the upload's progress; here every row is checked with
the send path's own rules (``messaging/csv_rows.py`` for the addresses, ``prepare_batch``
for the text each row makes), and only a file without a bad row is sent, as one batch:
a bad row is shown with its line and nothing is sent, so a corrected file can simply be
sent again. The batch is keyed by the file and the form, so a double submit sends it
once."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from pydantic import ValidationError
from starlette.responses import Response

from tidings.messaging.csv_rows import CsvProblem, Rejection, Row, check_row, rows_of
from tidings.messaging.schemas import BatchResponse, SendBatch
from tidings.messaging.sending import prepare_batch, store_batch
from tidings.portal.deps import PageSendMessages
from tidings.portal.forms import FormErrors, schema_errors, text_field
from tidings.portal.templating import gettext as _
from tidings.portal.templating import render
from tidings.web.deps import RuntimeDep
from tidings.web.errors import TidingsError

router = APIRouter(prefix="/portal/send/csv", include_in_schema=False)
Field = Annotated[str, Form()]
MAX_FILE_BYTES = 2 * 1024 * 1024
ERRORS_SHOWN = 100


@dataclass(frozen=True)
class Checked:
    """What the upload came to: the rows, and those that cannot be sent."""

    rows: list[Row]
    rejections: list[Rejection]


@router.get("")
async def csv_page(request: Request, rt: RuntimeDep, principal: PageSendMessages) -> Response:
    return _form(request, rt, principal, {}, FormErrors())


@router.post("")
async def upload(request: Request, rt: RuntimeDep, principal: PageSendMessages,
                 file: UploadFile | None = None, sender: Annotated[str, Form(alias="from")] = "",
                 body: Field = "") -> Response:
    values = {"from": sender, "body": body}
    errors = FormErrors()
    sender = text_field(errors, "from", sender, label="From", max_length=320)
    body = text_field(errors, "body", body, label="Message", max_length=1600, strip=False)
    raw = await _read(errors, file, rt.settings.batch_max_recipients)
    if errors or raw is None:
        return _form(request, rt, principal, values, errors, status=400)
    try:
        rows = rows_of(io.StringIO(raw.decode("utf-8-sig")))
    except (CsvProblem, UnicodeDecodeError) as problem:
        errors.add("file", _("The file %(problem)s.") % {"problem": _problem(problem)})
        return _form(request, rt, principal, values, errors, status=400)
    if not rows or len(rows) > rt.settings.batch_max_recipients:
        errors.add("file", _("The file needs between 1 and %(n)d rows.")
                   % {"n": rt.settings.batch_max_recipients})
        return _form(request, rt, principal, values, errors, status=400)
    try:
        checked, answer = await _send(rt, principal, rows, sender, body, raw)
    except ValidationError as invalid:
        schema_errors(errors, invalid, {"from", "body"})
    except TidingsError as refused:
        errors.add("", refused.detail)
    else:
        if checked.rejections:
            return _form(request, rt, principal, values, errors, rejections=checked.rejections,
                         rows=len(rows), status=400)
        return render(request, "send_csv_done.html", principal=principal, answer=answer)
    return _form(request, rt, principal, values, errors, status=400)


async def _send(rt: RuntimeDep, principal: PageSendMessages, rows: list[Row], sender: str,
                body: str, raw: bytes) -> tuple[Checked, BatchResponse | None]:
    """Check every row; send the batch only when none is bad."""
    rejections = [r for r in (check_row(row) for row in rows) if r is not None]
    if rejections:
        return Checked(rows, rejections), None
    batch_body = SendBatch.model_validate({"from": sender, "body": body, "channel": "sms",
                                           "recipients": [row.recipient() for row in rows]})
    ctx, batch = await prepare_batch(rt, principal, batch_body)
    rejections = [Rejection(rows[result.index].line, None, result.error.code,
                            result.error.detail)
                  for result in batch.results if result is not None and result.error]
    if rejections:
        return Checked(rows, rejections), None
    request = batch_body.model_dump(mode="json", by_alias=True)
    key = "portal-csv-" + hashlib.sha256(
        raw + json.dumps([sender, body]).encode()).hexdigest()
    answer, _replayed = await store_batch(rt, ctx, batch, key=key, request=request)
    return Checked(rows, []), answer


async def _read(errors: FormErrors, file: UploadFile | None, max_rows: int) -> bytes | None:
    if file is None or not file.filename:
        errors.add("file", _("Choose a CSV file."))
        return None
    raw = await file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        errors.add("file", _("The file is larger than 2 MB; split it (at most %(n)d rows a "
                             "file).") % {"n": max_rows})
        return None
    if not raw.strip():
        errors.add("file", _("The file is empty."))
        return None
    return raw


def _problem(problem: Exception) -> str:
    if isinstance(problem, UnicodeDecodeError):
        return _("is not UTF-8 text")
    return str(problem)


def _form(request: Request, rt: RuntimeDep, principal: PageSendMessages,
          values: dict[str, str], errors: FormErrors, *,
          rejections: list[Rejection] | None = None, rows: int = 0,
          status: int = 200) -> Response:
    return render(request, "send_csv.html", principal=principal, values=values,
                  errors=errors, rejections=(rejections or [])[:ERRORS_SHOWN],
                  more_rejections=max(len(rejections or []) - ERRORS_SHOWN, 0),
                  rejected=len(rejections or []), rows=rows,
                  max_rows=rt.settings.batch_max_recipients, status=status)
