"""What the consents tests share: a valid event, recording one, reading a history, and
the rows as the database holds them."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import Tenant
from tidings.audit.models import AuditEvent
from tidings.consents.models import ConsentEvent
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

NUMBER = "+12025550173"
EMAIL = "ann@example.com"
EVIDENCE = "form-7731 submitted by ann, checkbox ticked"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def opt_in(**more: Any) -> dict[str, Any]:
    """A valid body: an SMS marketing opt-in from a web form, with its proof."""
    return {"number": NUMBER, "channel": "sms", "purpose": "marketing",
            "mechanism": "opt_in", "source": "web_form", "evidence_ref": EVIDENCE,
            "text_version": "v3", "text_sha256": SHA, **more}


async def record(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    made = await client.post("/v1/consents", headers=tenant.headers, json=opt_in(**fields))
    assert made.status_code == 201, made.text
    return dict(made.json())


async def history(client: httpx.AsyncClient, tenant: Tenant,
                  **params: str) -> dict[str, Any]:
    found = await client.get("/v1/consents", headers=tenant.headers,
                             params=params or {"number": NUMBER})
    assert found.status_code == 200, found.text
    return dict(found.json())


async def stored(rt: Runtime) -> list[Any]:
    """Every consent event of every account, as the database holds it."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.execute(select(ConsentEvent.__table__).order_by(
            ConsentEvent.__table__.c.id))).all())


async def audited(rt: Runtime, tenant: str) -> list[AuditEvent]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.table_name == "consent_events")
            .order_by(AuditEvent.id))).all())


async def event_count(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(ConsentEvent)) or 0)
