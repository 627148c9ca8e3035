"""Bad input to the messages API: every refusal is problem+json and stores nothing.

Each test checks the status, the stable ``code`` and the content type, then that no
message, event, job, idempotency key or webhook delivery was written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Tenant, settle, stored_counts
from tidings.app import create_app
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

MESSAGES = "/v1/messages"
PROBLEM = "application/problem+json"
NUMBER = "+12025550173"
JSON = {"Content-Type": "application/json"}


def payload(**fields: Any) -> dict[str, Any]:
    return {"to": NUMBER, "from": "Acme", "body": "Hello", **fields}


def without(field: str) -> dict[str, Any]:
    body = payload()
    del body[field]
    return body


def raw_json(value: Any) -> bytes:
    """JSON as a client may send it: ASCII with escapes (lone surrogates, NULs and all)."""
    return json.dumps(value, ensure_ascii=True).encode()



NOTHING = {"messages": 0, "message_events": 0, "jobs": 0, "idempotency_keys": 0,
           "webhook_deliveries": 0}


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["code"], str)
    assert body["code"]
    assert body["type"].endswith(body["code"])
    assert body["title"]
    if code is not None:
        assert body["code"] == code, body
    return body


async def post(client: httpx.AsyncClient, tenant: Tenant, body: Any,
               **headers: str) -> httpx.Response:
    return await client.post(MESSAGES, headers={**tenant.headers, **headers}, json=body)


# --------------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize("content", [
    b"{", b'{"to": "+12025550173",', b"not json", b"{'to': 'x'}", b'{"to": +1}',
    b'{"body": "a" "b"}', b"\xff\xfe{}", b'{"to": "\\x"}', b"[1, 2",
])
async def test_malformed_json_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                         acme: Tenant, content: bytes) -> None:
    response = await client.post(MESSAGES, headers={**acme.headers, **JSON}, content=content)
    problem(response, 400, "malformed_json")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("content", [b"", b"[]", b"null", b"42", b'"text"', b"{}",
                                     b'[{"to": "+12025550173"}]'])
async def test_json_that_is_not_an_object_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                                     acme: Tenant, content: bytes) -> None:
    response = await client.post(MESSAGES, headers={**acme.headers, **JSON}, content=content)
    problem(response, 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize(("field", "value"), [
    ("to", 12025550173), ("to", None), ("to", ["+12025550173"]), ("to", {"number": NUMBER}),
    ("from", 42), ("from", None), ("from", True),
    ("body", ["Hello"]), ("body", 5), ("body", None), ("body", {"text": "x"}),
    ("channel", 1), ("channel", None),
    ("status_callback", 5), ("status_callback", ["http://x"]),
    ("send_at", {}), ("send_at", "tomorrow"), ("send_at", True), ("send_at", "2026-13-01T00:00Z"),
    ("validity_period", "abc"), ("validity_period", 1.5), ("validity_period", True),
    ("validity_period", "60"), ("validity_period", [60]), ("validity_period", 60.0),
])
async def test_wrong_types_are_refused(client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
                                       field: str, value: Any) -> None:
    body = problem(await post(client, acme, payload(**{field: value})), 400,
                   "validation_failed")
    assert any(field in err["loc"] for err in body["errors"]), body["errors"]
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("extra", [
    {"priority": "high"}, {"From": "Acme"}, {"TO": NUMBER}, {"media_url": "http://x/a.png"},
    {"body ": "x"}, {"id": "msg_01m84qpzqm0dtnqk3ed5kqy43j"}, {"status": "delivered"},
    {"account_id": "acc_other"},
])
async def test_unknown_fields_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                          acme: Tenant, extra: dict[str, Any]) -> None:
    body = problem(await post(client, acme, payload(**extra)), 400, "validation_failed")
    assert any(e["type"] == "extra_forbidden" for e in body["errors"]), body["errors"]
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("missing", ["to", "from", "body"])
async def test_missing_fields_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                          acme: Tenant, missing: str) -> None:
    body = problem(await post(client, acme, without(missing)), 400, "validation_failed")
    assert [e["loc"][-1] for e in body["errors"]] == [missing]
    assert body["errors"][0]["type"] == "missing"
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("body_text", ["", "a" * 1601, "é" * 1601, "😀" * 1601])
async def test_empty_or_too_long_bodies_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                                    acme: Tenant, body_text: str) -> None:
    problem(await post(client, acme, payload(body=body_text)), 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


async def test_the_configured_body_limit_applies(client: httpx.AsyncClient, rt: Runtime,
                                                 acme: Tenant) -> None:
    rt.settings.message_body_max_chars = 20
    problem(await post(client, acme, payload(body="x" * 21)), 400, "body_too_long")
    batch = await client.post(f"{MESSAGES}/batch", headers=acme.headers, json={
        "from": "Acme", "body": "{v}",
        "recipients": [{"to": NUMBER, "variables": {"v": "x" * 21}}]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["results"][0]["error"]["code"] == "body_too_long"
    assert await stored_counts(rt) == NOTHING
    assert (await post(client, acme, payload(body="x" * 20))).status_code == 201


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize("to", [
    "+1202555ABCD",  # letters
    "+1-800-FLOWERS",  # vanity letters
    "+١٢٠٢٥٥٥٠١٧٣",  # Arabic-Indic digits
    "+１２０２５５５０１７３",  # fullwidth digits  # noqa: RUF001
    "12025550173",  # no plus
    "0012025550173",  # international prefix instead of plus
    "+1202",  # too short
    "+1",
    "+",
    "+12025550173999999",  # too long
    " +12025550173",  # leading space
    "+1 202 555 0173 ext 5",
    "+1\n2025550173",
    "+1/202/555/0173",
    "+0 202 555 0173",  # no such country code
    "+1 (202) 555-0173" + " " * 20,  # longer than 32 characters
    "tel:+12025550173",
])
async def test_invalid_numbers_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                           acme: Tenant, to: str) -> None:
    problem(await post(client, acme, payload(to=to)), 400, "invalid_phone_number")
    assert await stored_counts(rt) == NOTHING


async def test_a_number_longer_than_the_schema_allows_is_a_validation_error(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    problem(await post(client, acme, payload(to="+1" + "2" * 63)), 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("sender", [
    "ABCDEFGHIJKL",  # 12 characters
    "Acme!", "Acme?", "Acme,Inc", "Acme@Corp", "<Acme>", "Acme/Co",  # punctuation
    " Acme", "Acme ",  # leading or trailing space
    "12",  # a 2-digit short code
    "123456789",  # 9 digits: neither short code nor alphanumeric
    "Ácme", "Acme™",  # not ASCII
    "+1202",  # an invalid phone number
    "...", "-_-",  # no letter
    "Acme\n",
])
async def test_invalid_sender_ids_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                              acme: Tenant, sender: str) -> None:
    problem(await post(client, acme, payload(**{"from": sender})), 400, "invalid_sender_id")
    assert await stored_counts(rt) == NOTHING


async def test_an_empty_sender_is_a_validation_error(client: httpx.AsyncClient, rt: Runtime,
                                                     acme: Tenant) -> None:
    problem(await post(client, acme, payload(**{"from": ""})), 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("sender", ["ABCDEFGHIJK", "A", "Acme Co", "A.B_C&D-E", "12345",
                                    "123", "12345678", "+1 (202) 555-0199"])
async def test_valid_sender_ids_are_accepted(client: httpx.AsyncClient, acme: Tenant,
                                             sender: str) -> None:
    """The control for the refusals above: the limits sit where they are documented."""
    assert (await post(client, acme, payload(**{"from": sender}))).status_code == 201


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("callback", [
    "ftp://example.com/hook", "javascript:alert(1)", "example.com/hook", "//example.com/hook",
    "http://", "https:// example.com", "http://example.com/a b", "mailto:ops@example.com",
    "file:///etc/passwd", "http://example.com/\x00", "https://example.com/\r\nX-Evil: 1",
    "http://example.com/\x7f", "https://example.com/" + "a" * 2048, "",
])
async def test_status_callback_must_be_an_http_url(client: httpx.AsyncClient, rt: Runtime,
                                                   acme: Tenant, callback: str) -> None:
    response = await client.post(MESSAGES, headers={**acme.headers, **JSON},
                                 content=raw_json(payload(status_callback=callback)))
    problem(response, 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize(("offset", "code"), [
    (timedelta(minutes=-5), "send_at_in_past"),
    (timedelta(days=-400), "send_at_in_past"),
    (timedelta(days=35, seconds=1), "send_at_too_far"),
    (timedelta(days=365), "send_at_too_far"),
])
async def test_send_at_must_be_within_the_window(client: httpx.AsyncClient, rt: Runtime,
                                                 clock: FakeClock, acme: Tenant,
                                                 offset: timedelta, code: str) -> None:
    send_at = (clock.now() + offset).isoformat()
    problem(await post(client, acme, payload(send_at=send_at)), 400, code)
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("send_at", ["2026-01-02T00:00:00", "2026-01-02 00:00:00",
                                     "2026-01-02", "next tuesday"])
async def test_send_at_must_carry_a_timezone(client: httpx.AsyncClient, rt: Runtime,
                                             acme: Tenant, send_at: str) -> None:
    problem(await post(client, acme, payload(send_at=send_at)), 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("validity", [0, -1, -3600, 14 * 24 * 3600 + 1, 10**12])
async def test_validity_period_must_be_positive_and_bounded(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, validity: int) -> None:
    problem(await post(client, acme, payload(validity_period=validity)), 400,
            "validation_failed")
    assert await stored_counts(rt) == NOTHING


async def test_the_option_boundaries_are_accepted(client: httpx.AsyncClient, rt: Runtime,
                                                  clock: FakeClock, acme: Tenant) -> None:
    """The controls: exactly at each limit is allowed."""
    for fields in (payload(validity_period=1), payload(validity_period=14 * 24 * 3600),
                   payload(send_at=(clock.now() + timedelta(days=35)).isoformat()),
                   payload(body="a" * 1600), payload(to="+1 (202) 555-0173"),
                   payload(status_callback="https://example.com/hooks?a=1&b=%20")):
        response = await post(client, acme, fields)
        assert response.status_code == 201, (fields, response.text)
    assert (await stored_counts(rt))["messages"] == 6


@pytest.mark.parametrize("channel", ["WhatsApp", "SMS", "Email", "sms ", "\x00", "fax"])
async def test_unknown_channels_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                            acme: Tenant, channel: str) -> None:
    response = await client.post(MESSAGES, headers={**acme.headers, **JSON},
                                 content=raw_json(payload(channel=channel)))
    problem(response, 400, "channel_unavailable")
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("text", ["\ud800", "a\udc00b", "😀\ud83d"])
async def test_lone_surrogates_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                           acme: Tenant, text: str) -> None:
    for fields in (payload(body=text), payload(**{"from": text}), payload(to=text),
                   payload(status_callback=f"https://example.com/{text}")):
        response = await client.post(MESSAGES, headers={**acme.headers, **JSON},
                                     content=raw_json(fields))
        problem(response, 400)
    assert await stored_counts(rt) == NOTHING


@pytest.mark.parametrize("key", ["", "k" * 256, "key\x00", "key\x01two", "key\x7f"])
async def test_bad_idempotency_keys_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                                acme: Tenant, key: str) -> None:
    response = await post(client, acme, payload(), **{"Idempotency-Key": key})
    problem(response, 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


# --------------------------------------------------------------------------- body size


async def test_a_body_over_the_limit_is_refused_with_413(client: httpx.AsyncClient,
                                                         rt: Runtime, acme: Tenant) -> None:
    padding = " " * (rt.settings.max_body_bytes + 1 - len(raw_json(payload())))
    content = raw_json(payload())[:-1] + padding.encode() + b"}"
    assert len(content) == rt.settings.max_body_bytes + 1
    response = await client.post(MESSAGES, headers={**acme.headers, **JSON}, content=content)
    problem(response, 413, "payload_too_large")
    batch = await client.post(f"{MESSAGES}/batch", headers={**acme.headers, **JSON},
                              content=b" " * (5 * 1024 * 1024))
    problem(batch, 413, "payload_too_large")
    assert await stored_counts(rt) == NOTHING


@pytest.fixture
async def small_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with a 1 KiB body limit."""
    app = create_app(rt.settings.model_copy(update={"max_body_bytes": 1024}))
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidings.test") as c:
        yield c


def _padded(size: int) -> bytes:
    content = raw_json(payload())
    return content[:-1] + b" " * (size - len(content)) + b"}"


async def test_the_limit_is_exact(small_client: httpx.AsyncClient, rt: Runtime,
                                  acme: Tenant) -> None:
    over = await small_client.post(MESSAGES, headers={**acme.headers, **JSON},
                                   content=_padded(1025))
    problem(over, 413, "payload_too_large")
    assert await stored_counts(rt) == NOTHING
    at_limit = await small_client.post(MESSAGES, headers={**acme.headers, **JSON},
                                       content=_padded(1024))
    assert at_limit.status_code == 201, at_limit.text


async def test_a_streamed_body_over_the_limit_is_refused_with_413(
        small_client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        content = _padded(3000)
        for start in range(0, len(content), 500):
            yield content[start:start + 500]

    response = await small_client.post(MESSAGES, headers={**acme.headers, **JSON},
                                       content=chunks())
    assert await stored_counts(rt) == NOTHING
    problem(response, 413, "payload_too_large")


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(("authorization", "code"), [
    (None, "missing_api_key"),
    ("", "missing_api_key"),
    ("Bearer", "missing_api_key"),
    ("Bearer    ", "missing_api_key"),
    ("Basic dXNlcjpwYXNz", "missing_api_key"),
    ("tdk_abc_def", "missing_api_key"),
    ("Bearer garbage", "invalid_api_key"),
    ("Bearer tdk_", "invalid_api_key"),
    ("Bearer tdk_abc", "invalid_api_key"),
    ("Bearer tdk_abcdef123456_" + "x" * 43, "invalid_api_key"),
    ("Bearer " + "x" * 5000, "invalid_api_key"),
])
async def test_requests_without_a_valid_key_are_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, authorization: str | None,
        code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for response in (
            await client.post(MESSAGES, headers=headers, json=payload()),
            await client.post(f"{MESSAGES}/batch", headers=headers, json={
                "from": "Acme", "body": "x", "recipients": [{"to": NUMBER}]}),
            await client.get(MESSAGES, headers=headers)):
        problem(response, 401, code)
    assert await stored_counts(rt) == NOTHING


async def test_missing_key_answers_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.post(MESSAGES, json=payload())
    problem(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_with_the_right_prefix_but_wrong_secret_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    real = acme.made.api_key
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    response = await client.post(MESSAGES, headers={"Authorization": f"Bearer {forged}"},
                                 json=payload())
    problem(response, 401, "invalid_api_key")
    assert await stored_counts(rt) == NOTHING


async def test_a_revoked_key_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                        acme: Tenant) -> None:
    assert (await post(client, acme, payload())).status_code == 201  # works before
    before = await stored_counts(rt)
    revoked = await client.delete(f"/v1/keys/{acme.made.api_key_id}", headers=acme.headers)
    assert revoked.status_code == 200, revoked.text
    problem(await post(client, acme, payload()), 401, "api_key_revoked")
    problem(await client.get(MESSAGES, headers=acme.headers), 401, "api_key_revoked")
    assert await stored_counts(rt) == before


# --------------------------------------------------------------------------- ids and tenants


async def test_another_tenants_message_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    send_at = (clock.now() + timedelta(hours=1)).isoformat()
    theirs = (await post(client, globex, payload(send_at=send_at))).json()
    before = await stored_counts(rt)

    read = await client.get(f"{MESSAGES}/{theirs['id']}", headers=acme.headers)
    missing = await client.get(f"{MESSAGES}/msg_{'0' * 26}", headers=acme.headers)
    read_body, missing_body = problem(read, 404, "message_not_found"), problem(
        missing, 404, "message_not_found")
    assert read_body["title"] == missing_body["title"]  # indistinguishable from a missing one
    problem(await client.post(f"{MESSAGES}/{theirs['id']}/cancel", headers=acme.headers),
            404, "message_not_found")
    assert theirs["id"] not in [m["id"] for m in (await client.get(
        MESSAGES, headers=acme.headers)).json()["data"]]

    assert await stored_counts(rt) == before
    still = await client.get(f"{MESSAGES}/{theirs['id']}", headers=globex.headers)
    assert still.json()["status"] == "scheduled"
    assert [e["status"] for e in still.json()["events"]] == ["scheduled"]


@pytest.mark.parametrize("message_id", [
    "x" * 10_000, "msg_" + "a" * 200, "msg_" + "A" * 26, "msg_" + "0" * 25, "msg_" + "0" * 27,
    "msg_" + "0" * 25 + "%00", "msg_" + "0" * 26 + "%0A", "msg_" + "ü" * 26,
    "..%2F..%2Faccount", "%2E%2E", "..%5C..%5Cwindows", "msg_%2F..%2F..%2Fetc%2Fpasswd",
    "%27%20OR%201%3D1--", "msg_01m84qpzqm0dtnqk3ed5kqy43j%27", "null", "0", "-1",
])
async def test_garbage_message_ids_are_not_found(client: httpx.AsyncClient, rt: Runtime,
                                                 acme: Tenant, message_id: str) -> None:
    assert (await post(client, acme, payload())).status_code == 201  # something to find
    before = await stored_counts(rt)
    for response in (
            await client.get(f"{MESSAGES}/{message_id}", headers=acme.headers),
            await client.post(f"{MESSAGES}/{message_id}/cancel", headers=acme.headers)):
        problem(response, 404)
        assert response.json()["code"] in {"message_not_found", "not_found"}
    assert await stored_counts(rt) == before


# --------------------------------------------------------------------------- listing


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage", "!!!!", "====", "bXNn", _b64(b"hello"), _b64(b"msg_"), _b64(b"msg_\x00"),
    _b64(b"msg_" + b"0" * 25 + b"\x00"), _b64(b"msg_' OR 1=1 --"), _b64(b"\xff\xfe"),
    _b64(b"msg_" + b"Z" * 26), _b64(b"acc_" + b"0" * 26), "%00",
])
async def test_invalid_cursors_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                           acme: Tenant, cursor: str) -> None:
    assert (await post(client, acme, payload())).status_code == 201
    before = await stored_counts(rt)
    response = await client.get(MESSAGES, headers=acme.headers, params={"cursor": cursor})
    problem(response, 400, "invalid_cursor")
    assert await stored_counts(rt) == before


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 5000}, {"limit": -1}, {"limit": 1001}, {"limit": "ten"},
    {"limit": "1.5"}, {"cursor": "c" * 101}, {"status": "lost"}, {"direction": "both"},
    {"created_after": "yesterday"}, {"created_before": "2026-01-01T00:00:00"},
    {"channel": "\x00"}, {"channel": "s" * 21}, {"to": "+1" + "2" * 63},
])
async def test_invalid_list_parameters_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                                   acme: Tenant, params: dict[str, Any]) -> None:
    response = await client.get(MESSAGES, headers=acme.headers, params=params)
    problem(response, 400, "validation_failed")
    assert await stored_counts(rt) == NOTHING


async def test_list_limit_bounds_are_accepted(client: httpx.AsyncClient, acme: Tenant) -> None:
    for limit in (1, 1000):
        response = await client.get(MESSAGES, headers=acme.headers, params={"limit": limit})
        assert response.status_code == 200, response.text


# --------------------------------------------------------------------------- other methods


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", MESSAGES), ("DELETE", MESSAGES), ("PATCH", f"{MESSAGES}/msg_{'0' * 26}"),
    ("DELETE", f"{MESSAGES}/msg_{'0' * 26}"), ("GET", f"{MESSAGES}/msg_{'0' * 26}/cancel"),
    ("GET", f"{MESSAGES}/batch/extra"),
])
async def test_other_methods_and_paths_are_problems(client: httpx.AsyncClient, rt: Runtime,
                                                    acme: Tenant, method: str,
                                                    path: str) -> None:
    response = await client.request(method, path, headers=acme.headers, json=payload())
    assert response.status_code in {404, 405}, response.text
    problem(response, response.status_code)
    assert await stored_counts(rt) == NOTHING


# --------------------------------------------------------------------------- fuzz

FIELDS = ["to", "from", "body", "channel", "status_callback", "send_at", "validity_period"]
INTERESTING = st.sampled_from([
    NUMBER, "+1 (202) 555-0173", "+12025550103", "Acme", "sms", "Hello", "",
    "http://127.0.0.1:9/hook", "https://example.com/\x00", "2026-01-01T00:10:00Z",
    "2026-01-01T00:10:00", "2019-01-01T00:00:00Z", "\x00", "\ud800", "😀", "{name}",
    "a" * 1601, "+١٢٠٢٥٥٥٠١٧٣", "NaN", "-0", "1e309",
])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
           | INTERESTING)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
OBJECTS = st.one_of(
    # Anything at all.
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), JSON_VALUES, max_size=8),
    # A valid request with a few fields replaced, removed or added: reaches deeper checks.
    st.builds(
        lambda changes, drop: {k: v for k, v in {**payload(), **changes}.items() if k != drop},
        st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | INTERESTING, max_size=3),
        st.sampled_from([None, *FIELDS])),
)


@pytest.fixture
def fuzz_tally() -> dict[str, int]:
    return {"created": 0, "refused": 0}


@pytest.fixture
async def lenient_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The real app; a crash comes back as the 500 a client would see, not an exception."""
    app = create_app(rt.settings)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidings.test") as c:
        yield c


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=OBJECTS)
async def test_fuzz_send_never_fails_with_a_server_error(
        lenient_client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        fuzz_tally: dict[str, int], body: dict[str, Any]) -> None:
    response = await lenient_client.post(MESSAGES, headers={**acme.headers, **JSON},
                                         content=raw_json(body))
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 201:
        fuzz_tally["created"] += 1
        assert response.json()["status"] in {"queued", "scheduled"}
    else:
        fuzz_tally["refused"] += 1
        problem(response, response.status_code)
        assert 400 <= response.status_code < 500
    # Exactly one message per 201, none for a refusal.
    assert (await stored_counts(rt))["messages"] == fuzz_tally["created"]


async def test_accepted_fuzzlike_bodies_dispatch_cleanly(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    """Odd but valid bodies (NUL, emoji, braces) survive the whole pipeline."""
    ids = []
    for text in ("a\x00b", "😀" * 100, "{name}", "\u202e", "\ufeff"):
        response = await client.post(MESSAGES, headers={**acme.headers, **JSON},
                                     content=raw_json(payload(body=text)))
        assert response.status_code == 201, response.text
        assert response.json()["body"] == text
        ids.append(response.json()["id"])
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    for message_id in ids:
        read = await client.get(f"{MESSAGES}/{message_id}", headers=acme.headers)
        assert read.json()["status"] == "delivered"
