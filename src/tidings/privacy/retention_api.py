"""HTTP endpoints of an account's message retention (``/v1/privacy/retention``): the
period in force, the account's choice within the operator's limits, the last runs."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from tidings.accounts.deps import MayManagePrivacy
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.privacy.models import RetentionPolicy, RetentionRun
from tidings.privacy.retention import limits_of, message_body_days, set_message_body_days
from tidings.privacy.schemas import RetentionOut, RetentionRunOut, SetRetention
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import problem_responses

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=PROBLEMS_OF_API_KEY_ROUTES)


async def retention_of(rt: Services, *, tenant: str) -> RetentionOut:
    limits = limits_of(rt.settings)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        days = await message_body_days(session, tenant=tenant, limits=limits)
        chosen = await session.scalar(select(RetentionPolicy.message_body_days).where(
            RetentionPolicy.tenant_id == tenant))
        runs = (await session.scalars(select(RetentionRun).where(
            RetentionRun.tenant_id == tenant).order_by(RetentionRun.started_at.desc(),
                                                       RetentionRun.id.desc()).limit(10))).all()
    return RetentionOut(
        message_body_days=days, chosen=chosen is not None, default_days=limits.default_days,
        min_days=limits.min_days, max_days=limits.max_days,
        runs=[RetentionRunOut(id=r.id, started_at=r.started_at, cutoff=r.cutoff,
                              messages=r.messages, keys_destroyed=r.keys_destroyed)
              for r in runs])


async def set_retention(rt: Services, *, tenant: str, body: SetRetention,
                        actor: Actor) -> RetentionOut:
    async with rt.db.transaction(tenant=tenant) as session:
        await set_message_body_days(session, tenant=tenant, days=body.message_body_days,
                                    limits=limits_of(rt.settings), actor=actor,
                                    now=rt.clock.now())
    return await retention_of(rt, tenant=tenant)


@router.get("/retention", response_model=RetentionOut, summary="The account's retention",
            operation_id="get_retention", dependencies=[KnownQueryOnly])
async def get_retention_endpoint(rt: RuntimeDep, principal: MayManagePrivacy) -> RetentionOut:
    """How long messages keep their bodies and addresses, within which limits, and the
    last runs of the daily job that anonymises them after that."""
    return await retention_of(rt, tenant=principal.tenant)


@router.put("/retention", response_model=RetentionOut, summary="Set the account's retention",
            operation_id="set_retention", responses=problem_responses(413))
async def set_retention_endpoint(body: SetRetention, rt: RuntimeDep,
                                 principal: MayManagePrivacy) -> RetentionOut:
    return await set_retention(rt, tenant=principal.tenant, body=body, actor=principal.actor)
