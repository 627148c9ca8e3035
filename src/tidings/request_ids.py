"""Request ids: one per API request, on its log lines, in its response, and carried in
the jobs it queues so that the worker's log lines about them carry it too.

A client's ``X-Request-Id`` is taken when it is well formed (a UUID, a ULID, any short
token of letters, digits and ``._:-``); otherwise, or without one, Tidings makes one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

import structlog

from tidings.ids import new_id

if TYPE_CHECKING:
    from tidings.outbox import ClaimedJob

HEADER = b"x-request-id"
MAX_PER_BATCH = 20
"""Request ids named on a worker's log line: a batch may hold hundreds of requests."""

_WELL_FORMED = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_current: ContextVar[str | None] = ContextVar("tidings_request_id", default=None)


def accept_or_make(given: bytes | None) -> str:
    """The client's id when it is well formed, else a new one."""
    if given is not None and _WELL_FORMED.fullmatch(given):
        return given.decode("ascii")
    return new_id("req")


def current() -> str | None:
    """The id of the request this code runs for, if any."""
    return _current.get()


def job_payload() -> dict[str, Any] | None:
    """A job's payload that names the current request (None outside a request)."""
    request_id = _current.get()
    return None if request_id is None else {"request_id": request_id}


# A pair of calls rather than a context manager: every request goes through them, and
# ``structlog.contextvars.bound_contextvars`` costs about 10 us more a request.
_Tokens = tuple[Token[str | None], Mapping[str, Token[Any]]]


def bind(request_id: str) -> _Tokens:
    """Run as request ``request_id``: log lines until ``unbind`` carry it."""
    return (_current.set(request_id),
            structlog.contextvars.bind_contextvars(request_id=request_id))


def unbind(tokens: _Tokens) -> None:
    structlog.contextvars.reset_contextvars(**tokens[1])
    _current.reset(tokens[0])


def of_jobs(jobs: Sequence[ClaimedJob]) -> dict[str, list[str]]:
    """``{"request_ids": [...]}`` for the log lines of a batch; empty when none has one."""
    found: dict[str, None] = {}
    for job in jobs:
        request_id = job.payload.get("request_id") if job.payload else None
        if isinstance(request_id, str):
            found[request_id] = None
            if len(found) >= MAX_PER_BATCH:
                break
    return {"request_ids": list(found)} if found else {}


@contextlib.contextmanager
def bound_to_jobs(jobs: Sequence[ClaimedJob]) -> Iterator[None]:
    """Log lines in here (the batch's handler, its tasks) name the batch's requests."""
    named = of_jobs(jobs)
    if not named:
        yield
        return
    with structlog.contextvars.bound_contextvars(**named):
        yield
