"""Request ids: one per API request, on its log lines, in its response, and carried in
the jobs it queues so that the worker's log lines about them carry it too.

A client's ``X-Request-Id`` is taken when it is well formed (a UUID, a ULID, any short
token of letters, digits and ``._:-``); otherwise, or without one, Tidings makes one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

import structlog

from tidings.core.ids import new_id

if TYPE_CHECKING:
    from tidings.jobs.outbox import ClaimedJob

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


def bind(request_id: str) -> Token[str | None]:
    """Run as request ``request_id`` until ``unbind``. Log lines carry it through
    ``tidings.core.logs.add_request_id``: one context variable set per request, where binding
    it into structlog's context as well cost a dictionary of tokens each time."""
    return _current.set(request_id)


def unbind(token: Token[str | None]) -> None:
    _current.reset(token)


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
