"""Policy versions over HTTP: the operator publishes and follows the answers
(``/v1/operator/policies``), a client reads the versions it was told of and objects or
accepts (``/v1/policies``); and the same functions for the portal's pages (the public
``/legal`` pages among them) and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from fastapi import APIRouter

from tidings.accounts.deps import MayManagePrivacy
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.operators.deps import CurrentOperator
from tidings.policies.models import (
    OBJECTION_REASON_FIELD,
    RESOLUTION_NOTE_FIELD,
    Outcome,
    PolicyNotice,
    PolicyVersion,
)
from tidings.policies.notifying import public_link
from tidings.policies.rules import State, Status, state_of, status_of
from tidings.policies.schemas import (
    KindName,
    ObjectToPolicy,
    PolicyCounts,
    PolicyNoticeDetail,
    PolicyNoticeOut,
    PolicyResponseOut,
    PolicyVersionDetail,
    PolicyVersionOut,
    PublishPolicy,
    ResolutionOut,
    ResolveObjection,
    StateName,
    StatusName,
)
from tidings.policies.service import (
    NOTIFY_JOB,
    Announced,
    Counts,
    announced,
    counts_of,
    do_accept,
    do_object,
    do_publish,
    do_resolve,
    get_notice,
    get_version,
    in_force_by_kind,
    list_versions,
    notice_of_account,
    notices_of_tenant,
    notices_of_version,
    notifying,
    versions_of_kind,
)
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys, VaultError
from tidings.web.deps import (
    PROBLEMS_OF_API_KEY_ROUTES,
    PROBLEMS_OF_OPERATOR_ROUTES,
    KnownQueryOnly,
    RuntimeDep,
)
from tidings.web.errors import NotFound, problem_responses

router = APIRouter(prefix="/v1/policies", tags=["policies"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)
operator_router = APIRouter(prefix="/v1/operator/policies", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)


# --------------------------------------------------------------------------- shapes


def _status(version: PolicyVersion, in_force: dict[str, datetime | None],
            now: datetime) -> Status:
    return status_of(version.effective_at, in_force.get(version.kind), now)


def _facts(rt: Services, version: PolicyVersion, status: Status) -> dict[str, object]:
    return {"kind": version.kind, "version": version.version, "title": version.title,
            "summary": version.summary, "sha256": version.sha256,
            "published_at": version.published_at,
            "objection_deadline": version.objection_deadline,
            "effective_at": version.effective_at, "status": status.value,
            "url": public_link(rt, version)}


def _opened(keys: TenantKeys | None, blob: bytes | None, field: str) -> str | None:
    """A notice's ciphertext read; None when there is none or its keys are gone."""
    if keys is None or blob is None:
        return None
    try:
        return keys.decrypt(blob, field=field)
    except VaultError:
        return None


def _resolution(keys: TenantKeys | None, notice: PolicyNotice) -> ResolutionOut | None:
    if notice.resolution is None or notice.resolved_at is None:
        return None
    return ResolutionOut(outcome=notice.resolution, resolved_at=notice.resolved_at,
                         resolved_by=notice.resolved_by or "",
                         note=_opened(keys, notice.resolution_note_enc,
                                      RESOLUTION_NOTE_FIELD))


def notice_out(rt: Services, keys: TenantKeys, notice: PolicyNotice, version: PolicyVersion,
               status: Status, now: datetime) -> PolicyNoticeOut:
    state = state_of(notice.answer, version.objection_deadline, now)
    return PolicyNoticeOut(
        **_facts(rt, version, status), id=version.id, notice_id=notice.id,
        notified_at=notice.notified_at, state=state.value,
        may_object=state is State.PENDING,  # pending: the deadline has not passed
        answered_at=notice.answered_at, answered_by=notice.answered_by,
        objection_reason=_opened(keys, notice.objection_reason_enc, OBJECTION_REASON_FIELD),
        resolution=_resolution(keys, notice))


def _counts(counts: Counts) -> PolicyCounts:
    return PolicyCounts(**asdict(counts))


def version_out(rt: Services, version: PolicyVersion, status: Status, counts: Counts,
                *, busy: bool) -> PolicyVersionOut:
    return PolicyVersionOut(**_facts(rt, version, status), id=version.id,
                            published_by=version.published_by, notifying=busy,
                            counts=_counts(counts))


# --------------------------------------------------------------------------- the operator


async def publish(rt: Services, body: PublishPolicy, *, actor: Actor) -> PolicyVersionDetail:
    """Publish a version; the accounts are told by the job it writes, at once."""
    async with rt.db.transaction(tenant=SYSTEM) as session:
        version = await do_publish(session, body=body, actor=actor, now=rt.clock.now())
    rt.wakeups.notify(NOTIFY_JOB)
    return await fetch_version(rt, version.id)


async def fetch_versions(rt: Services, *, kind: str | None = None,
                         status: str | None = None) -> list[PolicyVersionOut]:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        versions = await list_versions(session, kind=kind)
        in_force = await in_force_by_kind(session, now)
        counts = await counts_of(session, versions, now)
        busy = await notifying(session, [v.id for v in versions])
    found = [version_out(rt, v, _status(v, in_force, now), counts[v.id], busy=v.id in busy)
             for v in versions]
    return found if status is None else [v for v in found if v.status == status]


async def fetch_version(rt: Services, version_id: str) -> PolicyVersionDetail:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        version = await get_version(session, version_id)
        in_force = await in_force_by_kind(session, now)
        counts = (await counts_of(session, [version], now))[version.id]
        busy = version.id in await notifying(session, [version.id])
        notices = await notices_of_version(session, version.id)
    keys = await _keys_of(rt, [n.tenant_id for n, _ in notices
                               if n.objection_reason_enc or n.resolution_note_enc])
    out = version_out(rt, version, _status(version, in_force, now), counts, busy=busy)
    return PolicyVersionDetail(**out.model_dump(), text=version.text, responses=[
        _response(keys.get(notice.tenant_id), notice, name, version, now)
        for notice, name in notices])


def _response(keys: TenantKeys | None, notice: PolicyNotice, account_name: str,
              version: PolicyVersion, now: datetime) -> PolicyResponseOut:
    return PolicyResponseOut(
        account_id=notice.tenant_id, account_name=account_name, mail_ids=notice.mail_ids,
        undeliverable=notice.undeliverable, notified_at=notice.notified_at,
        state=state_of(notice.answer, version.objection_deadline, now).value,
        answered_at=notice.answered_at, answered_by=notice.answered_by,
        objection_reason=_opened(keys, notice.objection_reason_enc, OBJECTION_REASON_FIELD),
        resolution=_resolution(keys, notice))


async def _keys_of(rt: Services, tenants: Sequence[str]) -> dict[str, TenantKeys]:
    """The accounts' keys, by account; an account whose keys are destroyed has none."""
    found = {}
    for tenant in dict.fromkeys(tenants):
        try:
            found[tenant] = await rt.vault.keys_for(tenant)
        except VaultError:
            continue
    return found


async def resolve(rt: Services, version_id: str, account_id: str, body: ResolveObjection, *,
                  actor: Actor) -> PolicyResponseOut:
    """Close an account's objection to a version with its outcome."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        notice = await notice_of_account(session, version_id=version_id,
                                         account_id=account_id)
    keys = await rt.vault.keys_for(notice.tenant_id)  # an account told: its keys exist
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_resolve(session, keys, version_id=version_id, account_id=account_id,
                         outcome=Outcome(body.outcome), note=body.note, actor=actor,
                         now=rt.clock.now())
    detail = await fetch_version(rt, version_id)
    [answer] = [r for r in detail.responses if r.account_id == notice.tenant_id]
    return answer


# --------------------------------------------------------------------------- a client


async def fetch_notices(rt: Services, *, tenant: str, kind: str | None = None,
                        state: str | None = None) -> list[PolicyNoticeOut]:
    now = rt.clock.now()
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        rows = await notices_of_tenant(session, tenant, kind=kind)
        in_force = await in_force_by_kind(session, now)
    found = [notice_out(rt, keys, notice, version, _status(version, in_force, now), now)
             for notice, version in rows]
    return found if state is None else [n for n in found if n.state == state]


async def fetch_notice(rt: Services, *, tenant: str, version_id: str) -> PolicyNoticeDetail:
    now = rt.clock.now()
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        notice, version = await get_notice(session, tenant=tenant, version_id=version_id)
        in_force = await in_force_by_kind(session, now)
    out = notice_out(rt, keys, notice, version, _status(version, in_force, now), now)
    return PolicyNoticeDetail(**out.model_dump(), text=version.text)


async def object_to(rt: Services, *, tenant: str, version_id: str, body: ObjectToPolicy,
                    actor: Actor) -> PolicyNoticeDetail:
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant) as session:
        await do_object(session, keys, tenant=tenant, version_id=version_id,
                        reason=body.reason, actor=actor, now=rt.clock.now())
    return await fetch_notice(rt, tenant=tenant, version_id=version_id)


async def accept(rt: Services, *, tenant: str, version_id: str,
                 actor: Actor) -> PolicyNoticeDetail:
    async with rt.db.transaction(tenant=tenant) as session:
        await do_accept(session, tenant=tenant, version_id=version_id, actor=actor,
                        now=rt.clock.now())
    return await fetch_notice(rt, tenant=tenant, version_id=version_id)


# --------------------------------------------------------------------------- anyone


@dataclass(frozen=True)
class PublicPolicy:
    """A kind as the public page shows it: the version in force, and those to come."""

    kind: str
    in_force: PolicyVersion | None
    upcoming: list[PolicyVersion]


async def public_policy(rt: Services, kind: str) -> PublicPolicy:
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        versions = await versions_of_kind(session, kind)
    past = [v for v in versions if v.effective_at <= now]
    return PublicPolicy(kind=kind, in_force=past[-1] if past else None,
                        upcoming=[v for v in versions if v.effective_at > now])


async def public_version(rt: Services, kind: str, label: str) -> tuple[PolicyVersion, Status]:
    """One version of a kind by its label, and where it stands; ``NotFound`` else."""
    now = rt.clock.now()
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        versions = await versions_of_kind(session, kind)
    past = [v.effective_at for v in versions if v.effective_at <= now]
    for version in versions:
        if version.version == label:
            return version, status_of(version.effective_at, max(past, default=None), now)
    raise NotFound(f"No {kind} version {label[:60]!r}.", code="policy_not_found")


async def upcoming_versions(rt: Services) -> list[Announced]:
    """Every version not in effect yet, the soonest first (the log-in page's notice)."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return await announced(session, rt.clock.now())


# --------------------------------------------------------------------------- routes: client


@router.get("", response_model=list[PolicyNoticeOut],
            summary="The policy versions the account was told of",
            operation_id="list_policy_notices", dependencies=[KnownQueryOnly])
async def list_endpoint(rt: RuntimeDep, principal: MayManagePrivacy,
                        kind: KindName | None = None,
                        state: StateName | None = None) -> list[PolicyNoticeOut]:
    """The newest first, each with where the account stands: ``pending`` until the
    deadline, then ``deemed_accepted`` unless it objected or accepted."""
    return await fetch_notices(rt, tenant=principal.tenant, kind=kind, state=state)


@router.get("/{version_id}", response_model=PolicyNoticeDetail,
            summary="A policy version, whole, with where the account stands",
            operation_id="get_policy_notice")
async def get_endpoint(version_id: str, rt: RuntimeDep,
                       principal: MayManagePrivacy) -> PolicyNoticeDetail:
    return await fetch_notice(rt, tenant=principal.tenant, version_id=version_id)


@router.post("/{version_id}/objection", response_model=PolicyNoticeDetail,
             summary="Object to a policy version", operation_id="object_to_policy",
             responses=problem_responses(409))
async def object_endpoint(version_id: str, body: ObjectToPolicy, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> PolicyNoticeDetail:
    """In writing, until the deadline (included): ``objection_window_closed`` after it,
    ``already_objected`` or ``already_accepted`` once answered. The operator resolves
    the objection with the account."""
    return await object_to(rt, tenant=principal.tenant, version_id=version_id, body=body,
                           actor=principal.actor)


@router.post("/{version_id}/acceptance", response_model=PolicyNoticeDetail,
             summary="Accept a policy version now", operation_id="accept_policy",
             responses=problem_responses(409))
async def accept_endpoint(version_id: str, rt: RuntimeDep,
                          principal: MayManagePrivacy) -> PolicyNoticeDetail:
    """Before the deadline; silence accepts it at the deadline anyway."""
    return await accept(rt, tenant=principal.tenant, version_id=version_id,
                        actor=principal.actor)


# --------------------------------------------------------------------------- routes: operator


@operator_router.post("", status_code=201, response_model=PolicyVersionDetail,
                      summary="Publish a policy version and notify every client",
                      operation_id="publish_policy", responses=problem_responses(409))
async def publish_endpoint(body: PublishPolicy, rt: RuntimeDep,
                           operator: CurrentOperator) -> PolicyVersionDetail:
    """Stored whole with its SHA-256; every account not terminated is mailed a notice
    (by a job, at once), and has until one calendar month from now to object."""
    return await publish(rt, body, actor=operator.actor)


@operator_router.get("", response_model=list[PolicyVersionOut],
                     summary="Published policy versions, with the clients' answers counted",
                     operation_id="list_policy_versions", dependencies=[KnownQueryOnly])
async def list_versions_endpoint(rt: RuntimeDep, operator: CurrentOperator,
                                 kind: KindName | None = None,
                                 status: StatusName | None = None) -> list[PolicyVersionOut]:
    return await fetch_versions(rt, kind=kind, status=status)


@operator_router.get("/{version_id}", response_model=PolicyVersionDetail,
                     summary="A policy version and every account's answer",
                     operation_id="get_policy_version", responses=problem_responses(404))
async def get_version_endpoint(version_id: str, rt: RuntimeDep,
                               operator: CurrentOperator) -> PolicyVersionDetail:
    return await fetch_version(rt, version_id)


@operator_router.post("/{version_id}/objections/{account_id}/resolution",
                      response_model=PolicyResponseOut,
                      summary="Record how an account's objection was resolved",
                      operation_id="resolve_policy_objection",
                      responses=problem_responses(404, 409))
async def resolve_endpoint(version_id: str, account_id: str, body: ResolveObjection,
                           rt: RuntimeDep, operator: CurrentOperator) -> PolicyResponseOut:
    return await resolve(rt, version_id, account_id, body, actor=operator.actor)
