"""``POST /v1/messages`` without the framework's per-request machinery, when it is plain.

The single-send endpoint is the hottest path of the API, and FastAPI's routing,
dependency solving and response validation cost about as much as the send
itself. This ASGI middleware answers a *plain* send directly: JSON body, no
``Idempotency-Key``, a valid key that may send, a body that passes the same
``SendMessage`` schema and the same checks (``prepare_send``), stored by the same
``create_one``, charged to the same rate limits (a request over them is answered
``429`` here, at little cost). Anything else, and any error found before the write,
goes to the FastAPI endpoint with the body replayed, so errors, idempotent sends and
the OpenAPI description stay exactly the framework's. Nothing is written
before the hand-over, so a request is never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.accounts.deps import check_permission
from tidings.accounts.permissions import Permission
from tidings.messaging.schemas import SendMessage
from tidings.messaging.sending import create_one, prepare_send
from tidings.web.errors import PROBLEM_MEDIA_TYPE, TidingsError
from tidings.web.middleware import replay_body
from tidings.web.ratelimits import Quota, RateLimited, charge_once

if TYPE_CHECKING:
    from tidings.core.services import Services
    from tidings.messaging.drafts import Draft
    from tidings.messaging.service import SendContext

PATH = "/v1/messages"
ROUTE = SimpleNamespace(path=PATH)  # what the access log reports for this route
MAX_ACCOUNT_HEADER_CHARS = 40  # as the endpoint's Tidings-Account header declares


class FastSend:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = _first_headers(scope)
        if b"idempotency-key" in headers or not _is_json(headers.get(b"content-type")):
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if not complete:
            return  # the client went away before it finished sending: nobody to answer
        rt: Services = scope["app"].state.runtime
        client = scope.get("client")
        try:
            checked = await _check(rt, scope, headers, body, client[0] if client else None)
        except RateLimited as refused:  # answered here: shedding load must cost little
            scope["route"] = ROUTE
            await _answer(send, refused.status, orjson.dumps(refused.to_problem(PATH)),
                          PROBLEM_MEDIA_TYPE, _raw(refused.quota.refusal_headers()))
            return
        if checked is None:
            await self.app(scope, replay_body(body, receive), send)
            return
        scope["route"] = ROUTE
        created = await create_one(rt, checked.context, checked.draft)
        payload = orjson.dumps(created.model_dump(mode="json", by_alias=True))
        await _answer(send, 201, payload, "application/json",
                      checked.quota.raw_headers() if checked.quota else [])


@dataclass(frozen=True)
class _Checked:
    context: SendContext
    draft: Draft
    quota: Quota | None  # for the answer's RateLimit fields


async def _check(rt: Services, scope: Scope, headers: dict[bytes, str], body: bytes,
                 client_ip: str | None) -> _Checked | None:
    """The context and draft of a plain send, or None to let the endpoint answer;
    ``RateLimited`` past the caller's or the account's rate limit."""
    account = headers.get(b"tidings-account")
    if account is not None and len(account) > MAX_ACCOUNT_HEADER_CHARS:
        return None
    try:
        principal = await rt.auth.authenticate(headers.get(b"authorization"), account,
                                               client_ip=client_ip)
    except TidingsError:
        return None
    actor = principal.actor
    # Charged once for the request, also when the endpoint answers it after all.
    quota = await charge_once(
        rt.rate_limits, scope, account_id=principal.account_id,
        credential=(actor.type, actor.id),
        account_rps=await rt.account_rights.requests_per_second(principal.account_id))
    try:
        check_permission(principal, Permission.MESSAGES_SEND)
        context, draft = await prepare_send(rt, principal,
                                            SendMessage.model_validate_json(body))
    except (TidingsError, ValidationError):
        return None
    # A capped or trial account's send may be refused at the write (accounts/rights.py,
    # signup/trials.py): the endpoint answers that, as the framework's problem+json.
    if context.monthly_cap is not None or context.trial:
        return None
    return _Checked(context, draft, quota)


async def _answer(send: Send, status: int, payload: bytes, content_type: str,
                  headers: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", b"%d" % len(payload)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def _first_headers(scope: Scope) -> dict[bytes, str]:
    headers: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value.decode("latin-1"))
    return headers


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether it came whole (False: the client went away)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True
