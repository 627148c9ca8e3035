"""Webhook handshake, signatures and payload parsing, on payloads shaped like Meta's."""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import hmac
import json
import operator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.connectors.base import DeliveryReport, InboundMessage
from tidings.connectors.whatsapp.webhooks import (
    SIGNATURE_HEADER,
    CloudApiError,
    WebhookEvents,
    WebhookPayloadError,
    parse_events,
    signature_valid,
    verify_handshake,
)

VERIFY_TOKEN = "verify-me-5c2e"
APP_SECRET = "app-secret-9d41"
NUMBER_ID = "106540352242922"
OTHER_NUMBER_ID = "209876543210987"
OUR_DISPLAY = "15550783881"
CUSTOMER = "16505551234"


def _payload(*values: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    """A webhook body: one entry, one change per value."""
    return {"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398",
        "changes": [{"field": field, "value": value} for value in values]}]}


def _value(*, statuses: list[dict[str, Any]] | None = None,
           messages: list[dict[str, Any]] | None = None,
           errors: list[dict[str, Any]] | None = None,
           number_id: str = NUMBER_ID, display: str = OUR_DISPLAY) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": number_id}}
    if statuses is not None:
        value["statuses"] = statuses
    if messages is not None:
        value["contacts"] = [{"profile": {"name": "Kerry Fisher"}, "wa_id": CUSTOMER}]
        value["messages"] = messages
    if errors is not None:
        value["errors"] = errors
    return value


def _status(wamid: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": status, "timestamp": "1750263773",
            "recipient_id": CUSTOMER,
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"},
            **extra}


def _inbound(kind: str, **body: Any) -> dict[str, Any]:
    return {"from": CUSTOMER, "id": f"wamid.IN_{kind}", "timestamp": "1750263800",
            "type": kind, **body}


def _parse(payload: dict[str, Any], **kwargs: Any) -> WebhookEvents:
    return parse_events(orjson.dumps(payload), **kwargs)


# --- the handshake ----------------------------------------------------------------------

_HANDSHAKE = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
              "hub.challenge": "1158201444"}


def test_handshake_echoes_the_challenge() -> None:
    assert verify_handshake(_HANDSHAKE, VERIFY_TOKEN) == "1158201444"


@pytest.mark.parametrize("params", [
    _HANDSHAKE | {"hub.verify_token": "wrong"},
    _HANDSHAKE | {"hub.verify_token": ""},
    _HANDSHAKE | {"hub.mode": "unsubscribe"},
    _HANDSHAKE | {"hub.challenge": ""},
    _HANDSHAKE | {"hub.challenge": "<script>alert(1)</script>"},
    {k: v for k, v in _HANDSHAKE.items() if k != "hub.mode"},
    {k: v for k, v in _HANDSHAKE.items() if k != "hub.verify_token"},
    {k: v for k, v in _HANDSHAKE.items() if k != "hub.challenge"},
    {},
])
def test_handshake_refuses(params: dict[str, str]) -> None:
    assert verify_handshake(params, VERIFY_TOKEN) is None


def test_handshake_never_verifies_without_a_configured_token() -> None:
    assert verify_handshake(_HANDSHAKE | {"hub.verify_token": ""}, "") is None


# --- signatures -------------------------------------------------------------------------

_BODY = orjson.dumps(_payload(_value(statuses=[_status("wamid.A", "delivered")])))


def _signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "X-Hub-Signature-256"


def test_a_valid_signature() -> None:
    assert signature_valid(_BODY, _signature(_BODY), APP_SECRET)


def test_uppercase_hex_is_accepted() -> None:
    header = "sha256=" + _signature(_BODY).removeprefix("sha256=").upper()

    assert signature_valid(_BODY, header, APP_SECRET)


@pytest.mark.parametrize("header", [
    None, "", "sha256=", "sha256", _signature(_BODY).removeprefix("sha256="),
    _signature(_BODY).replace("sha256=", "sha1="), _signature(_BODY)[:-1],
    _signature(_BODY) + "0", _signature(_BODY)[:-1] + "g", " " + _signature(_BODY),
    "sha256=" + "é" * 64])
def test_missing_or_malformed_signatures_are_invalid(header: str | None) -> None:
    assert not signature_valid(_BODY, header, APP_SECRET)


def test_a_signature_of_another_body_is_invalid() -> None:
    assert not signature_valid(_BODY + b" ", _signature(_BODY), APP_SECRET)


def test_a_signature_under_another_secret_is_invalid() -> None:
    assert not signature_valid(_BODY, _signature(_BODY, "other-secret"), APP_SECRET)


def test_an_empty_secret_never_validates() -> None:
    assert not signature_valid(_BODY, _signature(_BODY, ""), "")


# --- statuses ---------------------------------------------------------------------------


def test_statuses_become_reports_reads_and_sent() -> None:
    failure = {"code": 131047, "title": "Re-engagement message",
               "message": "Re-engagement message",
               "error_data": {"details": "More than 24 hours have passed"}}
    events = _parse(_payload(_value(statuses=[
        _status("wamid.S", "sent", conversation={"id": "c1", "origin": {"type": "utility"}}),
        _status("wamid.D", "delivered"),
        _status("wamid.R", "read"),
        _status("wamid.F", "failed", errors=[failure]),
        _status("wamid.X", "deleted")])))

    assert events.sent == ["wamid.S"]
    assert events.reports == [DeliveryReport("wamid.D", "delivered"),
                              DeliveryReport("wamid.R", "delivered"),
                              DeliveryReport("wamid.F", "failed", "whatsapp:131047")]
    assert events.reads == ["wamid.R"]
    assert events.inbound == []
    assert events.customer_messages == []
    assert events.phone_number_ids == [NUMBER_ID]


# Meta's "errors messages webhook" (value.errors[]): about the app or account, not a message.
RATE_LIMIT = {"code": 130429, "title": "Rate limit hit",
              "message": "(#130429) Rate limit hit",
              "error_data": {"details": "Cloud API message throughput has been reached."},
              "href": "/docs/whatsapp/cloud-api/support/error-codes/"}


def test_value_level_errors_are_read_apart_from_message_failures() -> None:
    value = _value(statuses=[_status("wamid.F", "failed", errors=[{"code": 131026}])])
    events = _parse(_payload(value | {"errors": [RATE_LIMIT, {"code": 131000}]}))

    assert events.errors == [CloudApiError(130429, "Rate limit hit"), CloudApiError(131000, "")]
    assert events.reports == [DeliveryReport("wamid.F", "failed", "whatsapp:131026")]


def test_a_value_error_alone_is_no_message_event() -> None:
    events = _parse(_payload(_value(errors=[RATE_LIMIT])))

    assert events.errors == [CloudApiError(130429, "Rate limit hit")]
    assert (events.reports, events.inbound, events.sent) == ([], [], [])


def test_a_failure_without_errors_has_a_generic_code() -> None:
    events = _parse(_payload(_value(statuses=[_status("wamid.F", "failed")])))

    assert events.reports == [DeliveryReport("wamid.F", "failed", "whatsapp_failed")]


# --- customer messages ------------------------------------------------------------------


def test_an_inbound_text() -> None:
    events = _parse(_payload(_value(messages=[
        _inbound("text", text={"body": "Is the shop open today?"})])))

    assert events.inbound == [InboundMessage("whatsapp", "+" + CUSTOMER, "+" + OUR_DISPLAY,
                                             "Is the shop open today?",
                                             carrier_message_id="wamid.IN_text")]
    assert events.inbound_ids == ["wamid.IN_text"]
    assert events.customer_messages == [("+" + CUSTOMER, "+" + OUR_DISPLAY, 1750263800)]
    assert events.reports == []
    assert events.sent == []


def test_an_inbound_image_with_and_without_caption() -> None:
    image = {"mime_type": "image/jpeg", "sha256": "ab12", "id": "1003383421387256"}
    events = _parse(_payload(_value(messages=[
        _inbound("image", image=image | {"caption": "My broken toaster"}),
        _inbound("image", image=image)])))

    assert [m.body for m in events.inbound] == ["[image] My broken toaster", "[image]"]
    assert len(events.customer_messages) == 2


@pytest.mark.parametrize(("message", "body"), [
    (_inbound("document", document={"filename": "a.pdf", "id": "1"}), "[document]"),
    (_inbound("audio", audio={"id": "1", "voice": True}), "[audio]"),
    (_inbound("sticker", sticker={"id": "1", "animated": False}), "[sticker]"),
    (_inbound("location", location={"latitude": 1.0, "longitude": 2.0}), "[location]"),
    (_inbound("reaction", reaction={"message_id": "wamid.A", "emoji": "👍"}), "[reaction]"),
    (_inbound("button", button={"payload": "STOP", "text": "Stop promotions"}),
     "Stop promotions"),
    (_inbound("interactive", interactive={
        "type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}}),
     "Yes please"),
    (_inbound("interactive", interactive={
        "type": "list_reply", "list_reply": {"id": "r1", "title": "Tuesday"}}), "Tuesday"),
    (_inbound("interactive", interactive={"type": "nfm_reply"}), "[interactive]"),
    (_inbound("unsupported", errors=[{"code": 131051}]), "[unsupported]"),
])
def test_other_inbound_bodies(message: dict[str, Any], body: str) -> None:
    events = _parse(_payload(_value(messages=[message])))

    assert [m.body for m in events.inbound] == [body]


def test_system_messages_are_not_customer_messages() -> None:
    notice = _inbound("system", system={"body": "User changed number", "type": "user_changed"})

    events = _parse(_payload(_value(messages=[notice])))

    assert events.inbound == []
    assert events.customer_messages == []


def test_a_formatted_display_number_is_normalised() -> None:
    events = _parse(_payload(_value(display="+1 555-078-3881", messages=[
        _inbound("text", text={"body": "hi"})])))

    assert events.inbound[0].to == "+15550783881"


def test_numeric_timestamps_are_taken() -> None:
    message = _inbound("text", text={"body": "hi"}) | {"timestamp": 1750263800}

    events = _parse(_payload(_value(messages=[message])))

    assert events.customer_messages[0][2] == 1750263800


# --- several numbers, other fields ------------------------------------------------------


def test_filtering_by_phone_number_id() -> None:
    payload = _payload(
        _value(statuses=[_status("wamid.OURS", "delivered")]),
        _value(number_id=OTHER_NUMBER_ID, statuses=[_status("wamid.THEIRS", "delivered")]))

    ours = _parse(payload, phone_number_id=NUMBER_ID)
    everything = _parse(payload)

    assert ours.reports == [DeliveryReport("wamid.OURS", "delivered")]
    assert ours.phone_number_ids == [NUMBER_ID, OTHER_NUMBER_ID]
    assert len(everything.reports) == 2


def test_other_fields_are_skipped() -> None:
    template_update = {"event": "APPROVED", "message_template_id": 1,
                       "message_template_name": "order_shipped"}

    events = _parse(_payload(template_update, field="message_template_status_update"))

    assert events == WebhookEvents()


def test_an_empty_entry_list_is_no_events() -> None:
    assert _parse({"object": "whatsapp_business_account", "entry": []}) == WebhookEvents()


# --- bad payloads -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"\xff\xfe", b"[]", b"null", b'"text"',
    b'{"object": "page", "entry": []}', b'{"entry": []}',
    b'{"object": "whatsapp_business_account"}',
    b'{"object": "whatsapp_business_account", "entry": {}}',
    b'{"object": "whatsapp_business_account", "entry": [1]}',
    b'{"object": "whatsapp_business_account", "entry": [{}]}',
    b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}',
    b"[" * 5000 + b"]" * 5000,
    b'{"object": "whatsapp_business_account", "entry": [], "n": 1' + b"0" * 400 + b"}",
])
def test_unreadable_bodies(raw: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_events(raw)


_GOOD_STATUS = _status("wamid.A", "failed", errors=[{"code": 131026}])
_GOOD_MESSAGE = _inbound("text", text={"body": "hi"})


@pytest.mark.parametrize("value", [
    _value() | {"metadata": None},
    _value() | {"metadata": {"phone_number_id": NUMBER_ID}},
    _value() | {"metadata": {"display_phone_number": OUR_DISPLAY}},
    _value(display="not a number"),
    _value(statuses=[]) | {"statuses": {}},
    _value(statuses=[_GOOD_STATUS | {"id": 5}]),
    _value(statuses=[_GOOD_STATUS | {"status": None}]),
    _value(statuses=[_GOOD_STATUS | {"errors": [{"code": "131026"}]}]),
    _value(statuses=[_GOOD_STATUS | {"errors": [{"code": True}]}]),
    _value(statuses=[_GOOD_STATUS | {"errors": "oops"}]),
    _value() | {"errors": {"code": 130429}},
    _value() | {"errors": [{"code": "130429"}]},
    _value() | {"errors": [{"title": "Rate limit hit"}]},
    _value() | {"errors": [{"code": 130429, "title": 5}]},
    _value(messages=[_GOOD_MESSAGE | {"from": "+16505551234"}]),
    _value(messages=[_GOOD_MESSAGE | {"from": "٣٣٣٣٣"}]),
    _value(messages=[_GOOD_MESSAGE | {"timestamp": "yesterday"}]),
    _value(messages=[_GOOD_MESSAGE | {"timestamp": -1}]),
    _value(messages=[_GOOD_MESSAGE | {"text": "hi"}]),
    _value(messages=[_GOOD_MESSAGE | {"text": {"body": 3}}]),
    _value(messages=[_GOOD_MESSAGE | {"type": None}]),
    _value(messages=[_inbound("image", image={"caption": 3})]),
    _value(messages=[_inbound("button", button=[])]),
])
def test_wrong_shapes(value: dict[str, Any]) -> None:
    with pytest.raises(WebhookPayloadError):
        _parse(_payload(value))


# --- properties -------------------------------------------------------------------------

_KEYS = st.sampled_from([
    "object", "entry", "id", "changes", "field", "value", "metadata", "phone_number_id",
    "display_phone_number", "statuses", "messages", "status", "errors", "code", "from",
    "timestamp", "type", "text", "body", "image", "caption", "button", "interactive",
    "button_reply", "list_reply", "title"])
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
            | st.sampled_from(["whatsapp_business_account", "messages", "sent", "delivered",
                               "read", "failed", "text", "image", "button", "interactive",
                               "system", "16505551234", "1750263800"]))
_JSONISH = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children,
                                                                      max_size=6),
    max_leaves=40)


_EVERY_SHAPE = _payload(_value(
    statuses=[_status("wamid.S", "sent"), _status("wamid.D", "delivered"),
              _status("wamid.R", "read"),
              _status("wamid.F", "failed", errors=[{"code": 131026, "title": "Undeliverable"}])],
    errors=[RATE_LIMIT],
    messages=[_inbound("text", text={"body": "hi"}),
              _inbound("image", image={"id": "1", "caption": "look"}),
              _inbound("button", button={"payload": "P", "text": "Yes"}),
              _inbound("interactive", interactive={"button_reply": {"title": "A"},
                                                   "list_reply": {"title": "B"}}),
              _inbound("system", system={"body": "changed"})]))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children: list[tuple[Any, Any]] = (list(node.items()) if isinstance(node, dict)
                                       else list(enumerate(node)) if isinstance(node, list)
                                       else [])
    found = [prefix]
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


@st.composite
def _broken_payloads(draw: st.DrawFn) -> Any:
    """The payload of every shape with one to three spots replaced by any JSON or removed:
    each field gets its turn at being wrong while the rest stays readable."""
    document = copy.deepcopy(_EVERY_SHAPE)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)[1:]
        if not paths:  # everything under the root is gone already
            break
        path = draw(st.sampled_from(paths))
        parent = functools.reduce(operator.getitem, path[:-1], document)
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_JSONISH)
    return document


@given(st.one_of(_JSONISH, _broken_payloads()))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_parses_or_raises_the_payload_error(document: Any) -> None:
    raw = json.dumps(document).encode()  # stdlib: NaN and huge integers get through
    try:
        events = parse_events(raw)
    except WebhookPayloadError:
        return
    assert isinstance(events, WebhookEvents)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_the_payload_error(raw: bytes) -> None:
    with contextlib.suppress(WebhookPayloadError):
        parse_events(raw)


@given(st.binary(max_size=200), st.text(max_size=80))
def test_signature_check_never_raises(body: bytes, header: str) -> None:
    assert signature_valid(body, header, APP_SECRET) in (True, False)
    assert signature_valid(body, _signature(body), APP_SECRET)


@given(st.dictionaries(st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge"]),
                       st.text(max_size=40)))
def test_handshake_never_raises(params: dict[str, str]) -> None:
    challenge = verify_handshake(params, VERIFY_TOKEN)

    assert challenge is None or challenge == params["hub.challenge"]
