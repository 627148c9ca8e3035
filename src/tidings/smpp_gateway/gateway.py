"""The SMPP server for clients: binds checked against SMPP credentials, submits sent
through the same drafts, writer, tenancy, audit and webhooks as ``POST /v1/messages``.

* A submit_sm is answered with our message id only once the message is durable.
* Concatenated submits (UDH or SAR) become one message; every part is answered
  with its id when the last part is stored. If parts are still missing
  ``ASSEMBLY_SECONDS`` after the first came, a timer answers those that came
  with ESME_RSUBMITFAIL and nothing is stored.
* ``schedule_delivery_time`` and ``validity_period`` are the API's ``send_at`` and
  ``validity_period`` (ESME_RINVSCHED, ESME_RINVEXPIRY when they are not good).
* ``registered_delivery`` asks for a receipt: it comes back as a deliver_sm on a
  receiving bind of the same system_id (``tasks.py``), waiting while none is bound.
  A long message asks for one if any of its parts does (ESMEs such as Kannel set
  the flag on the first part only).
* Errors map to SMPP statuses: a bad destination is ESME_RINVDSTADR, a bad
  sender ESME_RINVSRCADR, a body the platform refuses ESME_RINVMSGLEN, an
  account that may not send ESME_RSUBMITFAIL.
* Sub-account rights hold as on the API: a sender id the account may not use is
  ESME_RINVSRCADR, SMS not among its channels ESME_RSUBMITFAIL, and its monthly cap
  reached ESME_RTHROTTLED (a client keeps the message and tries again later, so
  nothing is lost if the cap is raised; nothing is counted for it).
* Each submit_sm counts against its bind's rate limit and its account's (the same
  account bucket as the API's): past either it is answered ESME_RTHROTTLED. Failed
  binds count against their address too, in every process when the limits are in
  Redis; past the limit binds from there are refused (ESME_RBINDFAIL) unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from tidings.accounts.models import SENDING_STATUSES, AccountStatus
from tidings.accounts.service import ancestry, effective_status
from tidings.audit.service import Actor
from tidings.connectors.smpp.addresses import from_smpp
from tidings.connectors.smpp.coding import read_message
from tidings.connectors.smpp.concat import PartAssembler
from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import CommandStatus, Pdu, QuerySm, SubmitSm
from tidings.connectors.smpp.server import BoundClient, SmppServer
from tidings.connectors.smpp.stats import SmppSnapshot, StatusCounts, window_in_use
from tidings.connectors.smpp.times import SmppTimeError, parse_smpp_time
from tidings.core.ids import new_id
from tidings.core.logs import get_logger
from tidings.jobs.outbox import Job
from tidings.messaging.drafts import check_options, make_draft
from tidings.messaging.schemas import MAX_VALIDITY_SECONDS
from tidings.messaging.sending import check_body, check_rights, create_one, refuse_restricted
from tidings.messaging.service import SendContext
from tidings.messaging.status_changes import SMPP_DELIVER_JOB
from tidings.smpp_gateway.bind_guard import BindGuard, BindPolicy, bind_keys
from tidings.smpp_gateway.queries import query_state
from tidings.smpp_gateway.service import (
    BindCandidate,
    find_bind_candidate,
    stand_in_hash,
    verify_password,
)
from tidings.storage.db import SYSTEM
from tidings.web.errors import TidingsError
from tidings.webhooks.subscriptions import Subscription

if TYPE_CHECKING:
    from tidings.core.services import Services

log = get_logger("tidings.smpp_gateway")
ASSEMBLY_SECONDS = 60.0
STATUS_CACHE_SECONDS = 2.0


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@contextlib.contextmanager
def _refused_as(status: int, **by_code: int) -> Iterator[None]:
    """A check's error as the SMPP status that names the bad field (``by_code``: a
    TidingsError's code that names another field)."""
    try:
        yield
    except TidingsError as error:
        raise _Refused(by_code.get(error.code, status)) from None
    except SmppTimeError:
        raise _Refused(status) from None


_PartsKey = tuple[str, int, str]  # credential, concatenation reference, destination


@dataclass(frozen=True)
class Grant:
    credential_id: str
    tenant_id: str
    system_id: str
    # This bind's own: its submits are rate-limited per bind (and per account).
    bind_id: str = field(default_factory=lambda: new_id("bind"))


class SmppGateway:
    def __init__(self, rt: Services, *, assembly_seconds: float = ASSEMBLY_SECONDS,
                 status_seconds: float = STATUS_CACHE_SECONDS,
                 bind_policy: BindPolicy | None = None,
                 verify: Callable[[str, str], bool] = verify_password) -> None:
        self._rt = rt
        self._guard = BindGuard(rt.clock, bind_policy)
        self._verify = verify
        self._verifying = asyncio.Semaphore(1)
        self.server = SmppServer(self, system_id="tidings")
        self._parts: PartAssembler[_PartsKey, tuple[Link, SubmitSm]] = PartAssembler()
        self._assembly_seconds = assembly_seconds
        self._part_timers: dict[_PartsKey, asyncio.TimerHandle] = {}
        self._status_seconds = status_seconds
        self._status_cache: dict[str, tuple[float, str, Subscription]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._submits = StatusCounts()  # submit_sm parts answered, by our status
        self.deliveries: dict[str, int] = {"ok": 0, "not_ok": 0}
        """deliver_sm (receipts, messages) a client answered ESME_ROK, or did not."""

    def smpp_snapshot(self) -> SmppSnapshot:
        """Clients' binds, our deliver_sm awaiting their answer, counts: for ``/metrics``."""
        links = [link for link, _ in self.server.clients()]
        return SmppSnapshot(binds=len(links), window_in_use=window_in_use(links),
                            by_status=self._submits.by_name(),
                            deliveries=dict(self.deliveries))

    async def start(self, host: str, port: int) -> int:
        await asyncio.to_thread(stand_in_hash)  # made now, so that no bind waits for it
        port = await self.server.start(host, port)
        self._watcher = asyncio.create_task(self._watch_accounts())
        return port

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self.server.stop()
        for timer in self._part_timers.values():
            timer.cancel()
        self._part_timers.clear()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- accounts that may no longer be bound -----------------------------------------

    async def _watch_accounts(self) -> None:
        """A suspension or termination, of the account or of any account above it, made
        in this process or another, ends its open binds within ``status_seconds``."""
        while True:
            await asyncio.sleep(self._status_seconds)
            try:
                await self.unbind_held()
            except Exception:  # a failed round is retried by the next one
                log.exception("smpp_status_check_failed")

    async def unbind_held(self) -> None:
        by_tenant: dict[str, list[tuple[Link, BoundClient]]] = {}
        for link, client in self.server.clients():
            by_tenant.setdefault(_grant(client).tenant_id, []).append((link, client))
        for tenant, bound in by_tenant.items():
            status, _ = await self._account(tenant)
            if status in SENDING_STATUSES:
                continue
            for link, client in bound:
                log.warning("smpp_unbound", reason=f"account_{status}",
                            system_id=client.system_id)
                self._spawn(link.unbind(timeout=2.0))

    # --- binds ------------------------------------------------------------------------

    async def authenticate(self, system_id: str, password: str, peer: str) -> object | int:
        # Too many failures from this address, in any process: refused unchecked.
        if await self._rt.rate_limits.bind_blocked(peer):
            log.warning("smpp_bind_refused", reason="address_rate_limited")
            return CommandStatus.ESME_RBINDFAIL
        checked = await self._check_password(peer, system_id, password)
        if isinstance(checked, int):
            return checked
        status, _ = await self._account(checked.tenant_id)
        if status not in SENDING_STATUSES:
            log.warning("smpp_bind_refused", reason=f"account_{status}")
            return CommandStatus.ESME_RBINDFAIL
        return Grant(checked.credential_id, checked.tenant_id, system_id)

    async def _check_password(self, peer: str, system_id: str,
                              password: str) -> BindCandidate | int:
        """The credential these bind fields name, or the status to refuse the bind with."""
        keys = bind_keys(system_id, peer)
        if self._refused_as_locked(keys):
            return CommandStatus.ESME_RBINDFAIL
        async with self._rt.db.transaction(tenant=SYSTEM, write=False) as session:
            candidate = await find_bind_candidate(session, system_id=system_id)
        # Verified after the transaction, so no database connection waits on argon2,
        # one at a time, so that a burst of binds leaves CPU for everything else.
        async with self._verifying:
            if self._refused_as_locked(keys):  # locked while this bind waited its turn
                return CommandStatus.ESME_RBINDFAIL
            good = await asyncio.to_thread(self._password_matches, candidate, password)
        if candidate is None or not good:
            delay = self._guard.failed(keys)
            await self._rt.rate_limits.note_failed_bind(peer)
            log.warning("smpp_bind_refused", reason="credentials", slowed_by=delay)
            await asyncio.sleep(delay)
            return CommandStatus.ESME_RINVPASWD
        self._guard.succeeded(keys[0])
        return candidate

    def _password_matches(self, candidate: BindCandidate | None, password: str) -> bool:
        """On a thread. Without a credential, against a stand-in: as slow either way."""
        return self._verify(candidate.password_hash if candidate else stand_in_hash(), password)

    def _refused_as_locked(self, keys: tuple[str, str]) -> bool:
        locked = self._guard.locked(keys)
        if locked:  # which kind of key, never its value: an address is personal data
            log.warning("smpp_bind_refused", reason="locked",
                        locked=[key.split(":", 1)[0] for key in locked])
        return bool(locked)

    def on_bound(self, client: BoundClient) -> None:
        """Receipts and messages waiting for this client may go now."""
        self._spawn(self._release_waiting(_grant(client).tenant_id))

    async def _release_waiting(self, tenant: str) -> None:
        try:
            async with self._rt.db.transaction(tenant=SYSTEM) as session:
                await session.execute(update(Job).where(
                    Job.kind == SMPP_DELIVER_JOB, Job.tenant_id == tenant,
                    Job.locked_until.is_(None)).values(run_at=self._rt.clock.now()))
        except Exception:  # the jobs still run at their time; this only hurries them
            log.exception("smpp_release_failed")
        self._rt.wakeups.notify(SMPP_DELIVER_JOB)

    # --- requests ---------------------------------------------------------------------

    async def on_request(self, client: BoundClient, link: Link, pdu: Pdu) -> None:
        grant = _grant(client)
        if isinstance(pdu, SubmitSm):
            own_rate = await self._rt.account_rights.requests_per_second(grant.tenant_id)
            if not await self._rt.rate_limits.check_submit(account_id=grant.tenant_id,
                                                           bind_id=grant.bind_id,
                                                           account_rps=own_rate):
                # Each part counts: the client sends a throttled one again, and the
                # parts that came are kept for it.
                self._submits.count(CommandStatus.ESME_RTHROTTLED)
                link.respond(pdu, CommandStatus.ESME_RTHROTTLED)
                return
            await self._submit(grant, link, pdu)
        elif isinstance(pdu, QuerySm):
            await query_state(self._rt, grant.tenant_id, link, pdu)
        else:
            link.respond(pdu, CommandStatus.ESME_RINVCMDID)

    async def _submit(self, grant: Grant, link: Link, pdu: SubmitSm) -> None:
        concat, text = read_message(pdu.short_message, pdu.esm_class, pdu.data_coding,
                                    pdu.optional)
        if concat is None or concat.total <= 1:
            await self._create(grant, text, [(link, pdu)])
            return
        key = (grant.credential_id, concat.reference, pdu.destination_addr)
        whole = self._parts.add(key, concat, text, (link, pdu))
        if whole is None:
            self._time_out_later(key)
            return
        timer = self._part_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        await self._create(grant, *whole)

    def _time_out_later(self, key: _PartsKey) -> None:
        """The first part starts the clock; a timer, so that the client hears back even
        if it sends nothing more."""
        if key not in self._part_timers:
            self._part_timers[key] = asyncio.get_running_loop().call_later(
                self._assembly_seconds, self._time_out, key)

    def _time_out(self, key: _PartsKey) -> None:
        self._part_timers.pop(key, None)
        taken = self._parts.take(key)
        if taken is None:
            return
        log.warning("smpp_parts_timed_out", credential_id=key[0], parts=len(taken[1]))
        self._submits.count(CommandStatus.ESME_RSUBMITFAIL, len(taken[1]))
        for part_link, part in taken[1]:
            part_link.respond(part, CommandStatus.ESME_RSUBMITFAIL)

    async def _create(self, grant: Grant, body: str,
                      answers: list[tuple[Link, SubmitSm]]) -> None:
        try:
            created_id = await self._store(grant, [part for _, part in answers], body)
        except _Refused as refused:
            self._submits.count(refused.status, len(answers))
            for link, part in answers:
                link.respond(part, refused.status)
            return
        self._submits.count(CommandStatus.ESME_ROK, len(answers))
        for link, part in answers:
            link.respond(part, message_id=created_id)

    async def _store(self, grant: Grant, parts: list[SubmitSm], body: str) -> str:
        """Check and store one message (of one or more parts) as the API would; its id,
        once durable."""

        rt, now, pdu = self._rt, self._rt.clock.now(), parts[-1]
        status, webhooks = await self._account(grant.tenant_id)
        if status not in SENDING_STATUSES:
            raise _Refused(CommandStatus.ESME_RSUBMITFAIL)
        send_at, validity_period = _timing(parts, now)
        with _refused_as(CommandStatus.ESME_RINVSRCADR,
                         send_at_in_past=CommandStatus.ESME_RINVSCHED,
                         send_at_too_far=CommandStatus.ESME_RINVSCHED):
            options = check_options(
                sender=from_smpp(pdu.source_addr_ton, pdu.source_addr), channel="sms",
                status_callback=None, send_at=send_at, validity_period=validity_period,
                now=now)
        with _refused_as(CommandStatus.ESME_RINVSRCADR,
                         channel_not_allowed=CommandStatus.ESME_RSUBMITFAIL):
            cap = await check_rights(rt, grant.tenant_id, channels=[options.channel],
                                     sender=options.sender)
        with _refused_as(CommandStatus.ESME_RINVMSGLEN):
            check_body(rt, body)
        with _refused_as(CommandStatus.ESME_RINVDSTADR):
            draft = make_draft(options, now=now, body=body,
                               to=from_smpp(pdu.dest_addr_ton, pdu.destination_addr))
        if _asks_for_receipt(parts):
            draft = dataclasses.replace(draft, smpp_receipt_to=grant.credential_id)
        keys = await rt.vault.keys_for(grant.tenant_id)
        ctx = SendContext(grant.tenant_id, keys, Actor("smpp", grant.credential_id),
                          webhooks, cap, trial=status == AccountStatus.TRIAL)
        # A trial's refusals (docs/signup.md): an unverified number names the destination;
        # a used allowance is a submit that fails for good, not a throttle to retry.
        with _refused_as(CommandStatus.ESME_RSUBMITFAIL,
                         monthly_cap_reached=CommandStatus.ESME_RTHROTTLED,
                         trial_recipient_not_verified=CommandStatus.ESME_RINVDSTADR):
            await refuse_restricted(rt, ctx, draft.to)
            return (await create_one(rt, ctx, draft)).id

    async def _account(self, tenant: str) -> tuple[str, Subscription]:
        """(status that governs the account, webhook subscription), cached briefly: a
        suspension applies within ``status_seconds`` on open binds."""
        cached = self._status_cache.get(tenant)
        if cached and cached[0] > time.monotonic():
            return cached[1], cached[2]
        async with self._rt.db.transaction(tenant=SYSTEM, write=False) as session:
            chain = await ancestry(session, account_id=tenant)
        status = effective_status(chain)
        webhooks = Subscription.of(chain[0] if chain else None)
        self._status_cache[tenant] = (time.monotonic() + self._status_seconds, status,
                                      webhooks)
        return status, webhooks


def _asks_for_receipt(parts: list[SubmitSm]) -> bool:
    """Whether the message asks for a receipt: any of its parts does."""
    return any(part.registered_delivery & 0x03 for part in parts)


def _timing(parts: list[SubmitSm], now: datetime) -> tuple[datetime | None, int | None]:
    """``send_at`` and ``validity_period`` (seconds from ``send_at``, or now) as the API
    takes them, from the first part that gives each (ESMEs put them on every part, or
    on the first). A relative validity period counts from now, as in SMPP."""
    with _refused_as(CommandStatus.ESME_RINVSCHED):
        send_at = parse_smpp_time(
            next((p.schedule_delivery_time for p in parts if p.schedule_delivery_time), ""),
            now=now)
    with _refused_as(CommandStatus.ESME_RINVEXPIRY):
        expires_at = parse_smpp_time(
            next((p.validity_period for p in parts if p.validity_period), ""), now=now)
    if expires_at is None:
        return send_at, None
    seconds = math.ceil((expires_at - max(send_at or now, now)).total_seconds())
    if not 1 <= seconds <= MAX_VALIDITY_SECONDS:  # already over, or longer than the API allows
        raise _Refused(CommandStatus.ESME_RINVEXPIRY)
    return send_at, seconds


def _grant(client: BoundClient) -> Grant:
    if not isinstance(client.grant, Grant):
        raise TypeError("a bind without a grant")
    return client.grant
