"""The Cloud API's webhooks: ``/v1/whatsapp/{connector}/webhook``.

``GET`` answers Meta's verification handshake with the connector's verify token;
``POST`` takes status updates and customer messages, refused unless
``X-Hub-Signature-256`` matches the body under the connector's app secret. It
answers 200 once everything is stored (503 if the pipeline could not take an
inbound message, so Meta posts it again). A status for a message id we do not
know (sent outside Tidings) is logged and dropped. Errors Meta reports about the
number itself (``value.errors``, such as a rate-limit notice) are logged, counted
and stored for ``GET /v1/operator/connectors/{name}/errors``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from tidings.connectors.whatsapp.webhooks import (
    SIGNATURE_HEADER,
    CloudApiError,
    WebhookPayloadError,
    parse_events,
    signature_valid,
    verify_handshake,
)
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.messaging.tasks import note_reads
from tidings.routing.service import (
    OPERATOR_KEYRING,
    connector_secrets,
    do_record_connector_errors,
    get_connector,
)
from tidings.storage.db import SYSTEM
from tidings.web.deps import RuntimeDep, public
from tidings.web.errors import Forbidden, InvalidRequest, NotFound, TidingsError, problem_responses

router = APIRouter(prefix="/v1/whatsapp", tags=["whatsapp"], dependencies=[public])
log = get_logger("tidings.whatsapp")


@router.get("/{connector}/webhook", response_class=PlainTextResponse,
            summary="Meta's webhook verification handshake",
            operation_id="verify_whatsapp_webhook", responses=problem_responses(403, 404))
async def verify(connector: str, request: Request, rt: RuntimeDep) -> Response:
    settings = await _connector_settings(rt, connector)
    challenge = verify_handshake(dict(request.query_params), settings["verify_token"])
    if challenge is None:
        raise Forbidden("The verify token does not match.", code="whatsapp_verify_failed")
    return PlainTextResponse(challenge)


@router.post("/{connector}/webhook", summary="Statuses and messages from the Cloud API",
             operation_id="receive_whatsapp_webhook",
             responses=problem_responses(400, 403, 404, 413, 503))
async def receive(connector: str, request: Request, rt: RuntimeDep) -> dict[str, str]:
    settings = await _connector_settings(rt, connector)
    raw = await request.body()
    if not signature_valid(raw, request.headers.get(SIGNATURE_HEADER), settings["app_secret"]):
        raise Forbidden("The signature does not match the body.", code="invalid_signature")
    try:
        events = parse_events(raw, phone_number_id=settings["phone_number_id"])
    except WebhookPayloadError as exc:
        raise InvalidRequest(str(exc), code="invalid_payload") from None
    if events.reports:
        taken = await rt.report_sink(connector, events.reports)
        if not all(taken):
            log.warning("whatsapp_status_unmatched", connector=connector,
                        count=taken.count(False))
    await note_reads(rt, connector, events.reads)
    if events.inbound and not all(await rt.inbound_sink(connector, events.inbound)):
        raise TidingsError("Try again later.", code="retry_later", status=503)
    if events.errors:  # last: a 503 above makes Meta post them again
        await _record_errors(rt, connector, events.errors)
    return {"status": "ok"}


async def _record_errors(rt: Services, connector: str, errors: list[CloudApiError]) -> None:
    for error in errors:
        log.warning("whatsapp_connector_error", connector=connector, code=error.code,
                    title=error.title)
        rt.metrics.connector_errors.labels(connector, str(error.code)).inc()
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_record_connector_errors(session, connector=connector,
                                         errors=[(e.code, e.title) for e in errors],
                                         now=rt.clock.now())


async def _connector_settings(rt: Services, name: str) -> dict[str, Any]:
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await get_connector(session, name=name)
    if row.kind != "whatsapp":
        raise NotFound(f"No WhatsApp connector {row.name!r}.", code="connector_not_found")
    return {**row.settings, **connector_secrets(keys, row)}
