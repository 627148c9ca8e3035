"""The audit trail's housekeeping: events are sealed into their chains off the request
path, every round (``jobs.workers.HOUSEKEEPING_SECONDS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.audit.service import seal_pending
from tidings.jobs.registry import JobRegistry

if TYPE_CHECKING:
    from tidings.core.services import Services


async def seal(rt: Services) -> None:
    await seal_pending(rt.db, rt.audit_chain)


def register(registry: JobRegistry) -> None:
    registry.chore("audit_seal", seal)
