"""The sub-processor register over HTTP: the operator's (``/v1/operator/subprocessors``),
a client's view and objection (``/v1/subprocessors``), and the public list
(``/v1/public/subprocessors``; the page ``/subprocessors`` shows the same). The console's
pages and the CLI call these functions too."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select

from tidings.accounts.deps import AnyMember, MayManagePrivacy
from tidings.accounts.models import Account
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.operators.deps import CurrentOperator
from tidings.routing.models import ConnectorConfig
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.subprocessors.gates import keeps_off
from tidings.subprocessors.models import Status, Subprocessor, SubprocessorNotice
from tidings.subprocessors.notices import (
    do_object,
    do_resolve,
    reason_of,
)
from tidings.subprocessors.register import (
    do_change,
    do_create,
    do_notify,
    do_retire,
    get_entry,
    kept_off_counts,
    list_entries,
    objection_counts,
    status_at,
)
from tidings.subprocessors.schemas import (
    ClientSubprocessorOut,
    CreateSubprocessor,
    NotifySubprocessor,
    ObjectionIn,
    OperatorSubprocessorOut,
    PublicRegister,
    ResolutionIn,
    SubprocessorFields,
    SubprocessorNoticeOut,
    SubprocessorOut,
    YourNotice,
)
from tidings.web.deps import (
    PROBLEMS_OF_API_KEY_ROUTES,
    PROBLEMS_OF_OPERATOR_ROUTES,
    KnownQueryOnly,
    RuntimeDep,
    public,
)
from tidings.web.errors import problem_responses

operator_router = APIRouter(prefix="/v1/operator/subprocessors", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)
router = APIRouter(prefix="/v1/subprocessors", tags=["privacy"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)
public_router = APIRouter(prefix="/v1/public", tags=["privacy"])


# --------------------------------------------------------------------------- shapes


def entry_out(entry: Subprocessor, now: datetime, *, kept_off: int) -> SubprocessorOut:
    return SubprocessorOut(
        id=entry.id, legal_name=entry.legal_name, countries=entry.countries,
        purpose=entry.purpose, data_categories=entry.data_categories,
        transfer_mechanism=entry.transfer_mechanism,
        security_summary=entry.security_summary,
        status=status_at(entry, now, objections=kept_off).value,
        notified_at=entry.notified_at, effective_at=entry.effective_at,
        retired_at=entry.retired_at)


def your_notice(keys: TenantKeys, notice: SubprocessorNotice, entry: Subprocessor,
                now: datetime) -> YourNotice:
    status = status_at(entry, now, objections=0)
    applies = (status == Status.ACTIVE and now >= notice.effective_at
               and not keeps_off(notice))
    return YourNotice(notified_at=notice.notified_at, effective_at=notice.effective_at,
                      objection_until=notice.effective_at, objected_at=notice.objected_at,
                      objection_reason=reason_of(keys, notice),
                      resolution=notice.resolution,
                      resolved_at=notice.resolved_at,
                      resolution_note=notice.resolution_note, applies=applies)


def notice_out(keys: TenantKeys, notice: SubprocessorNotice,
               account: Account) -> SubprocessorNoticeOut:
    return SubprocessorNoticeOut(
        account_id=account.id, account_name=account.name, notified_at=notice.notified_at,
        effective_at=notice.effective_at, mail_ids=notice.mail_ids,
        undeliverable=notice.undeliverable, objected_at=notice.objected_at,
        objected_by=notice.objected_by, objection_reason=reason_of(keys, notice),
        resolution=notice.resolution, resolved_at=notice.resolved_at,
        resolved_by=notice.resolved_by, resolution_note=notice.resolution_note)


# --------------------------------------------------------------------- the operator


async def register_entries(rt: Services) -> list[OperatorSubprocessorOut]:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        entries = await list_entries(session)
        counts, kept = await objection_counts(session), await kept_off_counts(session)
        carriers = (await session.execute(
            select(ConnectorConfig.subprocessor_id, ConnectorConfig.name)
            .where(ConnectorConfig.subprocessor_id.is_not(None))
            .order_by(ConnectorConfig.name))).all()
    return [_operator_out(entry, now, counts.get(entry.id, (0, 0, 0)), kept.get(entry.id, 0),
                          [name for sub_id, name in carriers if sub_id == entry.id])
            for entry in entries]


def _operator_out(entry: Subprocessor, now: datetime, counts: tuple[int, int, int],
                  kept_off: int, connectors: list[str]) -> OperatorSubprocessorOut:
    told, open_, all_ = counts
    return OperatorSubprocessorOut(
        **entry_out(entry, now, kept_off=kept_off).model_dump(), created_at=entry.created_at,
        created_by=entry.created_by, connectors=connectors, notices=told,
        objections_open=open_, objections=all_)


async def register_entry(rt: Services, sub_id: str) -> OperatorSubprocessorOut:
    for entry in await register_entries(rt):
        if entry.id == sub_id:
            return entry
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        await get_entry(session, sub_id)  # raises the 404
    raise AssertionError("unreachable")


async def record_entry(rt: Services, body: CreateSubprocessor,
                       actor: Actor) -> OperatorSubprocessorOut:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        entry = do_create(session, body=body, actor=actor, now=rt.clock.now())
    return await register_entry(rt, entry.id)


async def notify_entry(rt: Services, sub_id: str, effective_at: datetime
                       ) -> OperatorSubprocessorOut:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_notify(session, sub_id=sub_id, effective_at=effective_at, now=rt.clock.now())
    rt.wakeups.notify("subprocessors.notify")
    rt.routes.invalidate()
    return await register_entry(rt, sub_id)


async def retire_entry(rt: Services, sub_id: str) -> OperatorSubprocessorOut:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_retire(session, sub_id=sub_id, now=rt.clock.now())
    rt.routes.invalidate()
    return await register_entry(rt, sub_id)


async def entry_notices(rt: Services, sub_id: str) -> list[SubprocessorNoticeOut]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        await get_entry(session, sub_id)
        rows = (await session.execute(
            select(SubprocessorNotice, Account)
            .join(Account, Account.id == SubprocessorNotice.tenant_id)
            .where(SubprocessorNotice.subprocessor_id == sub_id)
            .order_by(SubprocessorNotice.objected_at.is_(None), SubprocessorNotice.notified_at,
                      SubprocessorNotice.id))).all()
    return [notice_out(await rt.vault.keys_for(account.id), notice, account)
            for notice, account in rows]


async def resolve_objection(rt: Services, sub_id: str, account_id: str, body: ResolutionIn,
                            actor: Actor) -> SubprocessorNoticeOut:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        notice = await do_resolve(rt, session, sub_id=sub_id, tenant=account_id,
                                  outcome=body.outcome, note=body.note, actor=actor,
                                  now=rt.clock.now())
        account = await session.get(Account, account_id)
        assert account is not None
        out = notice_out(await rt.vault.keys_for(account_id), notice, account)
    rt.wakeups.notify("mail.send")
    rt.routes.invalidate()
    return out


@operator_router.post("", status_code=201, response_model=OperatorSubprocessorOut,
                      summary="Record a sub-processor (proposed: nobody told yet)",
                      operation_id="create_subprocessor", responses=problem_responses(413))
async def create_endpoint(body: CreateSubprocessor, rt: RuntimeDep,
                          operator: CurrentOperator) -> OperatorSubprocessorOut:
    return await record_entry(rt, body, operator.actor)


@operator_router.get("", response_model=list[OperatorSubprocessorOut],
                     summary="The register, with notices and objections",
                     operation_id="list_subprocessors_operator",
                     dependencies=[KnownQueryOnly])
async def list_endpoint(rt: RuntimeDep,
                        _operator: CurrentOperator) -> list[OperatorSubprocessorOut]:
    return await register_entries(rt)


@operator_router.get("/{sub_id}", response_model=OperatorSubprocessorOut,
                     summary="One entry of the register", operation_id="get_subprocessor",
                     responses=problem_responses(404))
async def show_endpoint(sub_id: str, rt: RuntimeDep,
                        _operator: CurrentOperator) -> OperatorSubprocessorOut:
    return await register_entry(rt, sub_id)


@operator_router.patch("/{sub_id}", response_model=OperatorSubprocessorOut,
                       summary="Change an entry nobody was told of",
                       operation_id="update_subprocessor",
                       responses=problem_responses(404, 409, 413))
async def change_endpoint(sub_id: str, body: SubprocessorFields, rt: RuntimeDep,
                          _operator: CurrentOperator) -> OperatorSubprocessorOut:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_change(session, sub_id=sub_id, body=body, now=rt.clock.now())
    return await register_entry(rt, sub_id)


@operator_router.post("/{sub_id}/notify", response_model=OperatorSubprocessorOut,
                      summary="Tell every client, in effect thirty days or more from now",
                      operation_id="notify_subprocessor",
                      responses=problem_responses(404, 409, 413))
async def notify_endpoint(sub_id: str, body: NotifySubprocessor, rt: RuntimeDep,
                          _operator: CurrentOperator) -> OperatorSubprocessorOut:
    return await notify_entry(rt, sub_id, body.effective_at)


@operator_router.post("/{sub_id}/retire", response_model=OperatorSubprocessorOut,
                      summary="Stop using a sub-processor: its connectors carry nothing more",
                      operation_id="retire_subprocessor", responses=problem_responses(404, 409))
async def retire_endpoint(sub_id: str, rt: RuntimeDep,
                          _operator: CurrentOperator) -> OperatorSubprocessorOut:
    return await retire_entry(rt, sub_id)


@operator_router.get("/{sub_id}/notices", response_model=list[SubprocessorNoticeOut],
                     summary="Each client told, and its objection",
                     operation_id="list_subprocessor_notices", dependencies=[KnownQueryOnly],
                     responses=problem_responses(404))
async def notices_endpoint(sub_id: str, rt: RuntimeDep,
                           _operator: CurrentOperator) -> list[SubprocessorNoticeOut]:
    return await entry_notices(rt, sub_id)


@operator_router.post("/{sub_id}/objections/{account_id}/resolution",
                      response_model=SubprocessorNoticeOut, summary="Resolve a client's objection",
                      operation_id="resolve_subprocessor_objection",
                      responses=problem_responses(404, 409, 413))
async def resolve_endpoint(sub_id: str, account_id: str, body: ResolutionIn, rt: RuntimeDep,
                           operator: CurrentOperator) -> SubprocessorNoticeOut:
    return await resolve_objection(rt, sub_id, account_id, body, operator.actor)


# ----------------------------------------------------------------------- the client


async def client_entries(rt: Services, tenant: str) -> list[ClientSubprocessorOut]:
    """The register as a client sees it: what everyone sees, with its own notice."""
    now, keys = rt.clock.now(), await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        entries = await list_entries(session, public=True)
        notices = {n.subprocessor_id: n for n in await session.scalars(
            select(SubprocessorNotice).where(SubprocessorNotice.tenant_id == tenant))}
    return [ClientSubprocessorOut(
        **entry_out(entry, now, kept_off=0).model_dump(),
        notice=(your_notice(keys, notices[entry.id], entry, now)
                if entry.id in notices else None)) for entry in entries]


async def object_to(rt: Services, tenant: str, sub_id: str, reason: str,
                    actor: Actor) -> ClientSubprocessorOut:
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant) as session:
        await do_object(rt, session, keys=keys, tenant=tenant, sub_id=sub_id, reason=reason,
                        actor=actor, now=rt.clock.now())
    rt.routes.invalidate()
    return next(e for e in await client_entries(rt, tenant) if e.id == sub_id)


@router.get("", response_model=list[ClientSubprocessorOut],
            summary="The sub-processors, with this account's notices and objections",
            operation_id="list_subprocessors", dependencies=[KnownQueryOnly])
async def client_list_endpoint(rt: RuntimeDep,
                               principal: AnyMember) -> list[ClientSubprocessorOut]:
    return await client_entries(rt, principal.tenant)


@router.post("/{sub_id}/objection", response_model=ClientSubprocessorOut,
             summary="Object to a sub-processor before it applies to this account",
             operation_id="object_to_subprocessor", responses=problem_responses(404, 409, 413))
async def object_endpoint(sub_id: str, body: ObjectionIn, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> ClientSubprocessorOut:
    return await object_to(rt, principal.tenant, sub_id, body.reason, principal.actor)


# ----------------------------------------------------------------------- everyone


async def public_register(rt: Services) -> PublicRegister:
    """What anyone may see; whether some client objected is that client's business and
    the operator's, so an entry in its notice period shows as ``notified``."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        entries = await list_entries(session, public=True)
    shown = [entry_out(e, now, kept_off=0) for e in entries]
    return PublicRegister(
        as_of=now, current=[e for e in shown if e.status == "active"],
        upcoming=[e for e in shown if e.status == "notified"],
        former=[e for e in shown if e.status == "retired"])


@public_router.get("/subprocessors", response_model=PublicRegister,
                   summary="The sub-processors in use, coming and former, now",
                   operation_id="get_public_subprocessors", dependencies=[public])
async def public_endpoint(rt: RuntimeDep) -> PublicRegister:
    return await public_register(rt)
