"""The service statistics' chore: every ten minutes, the settled days not yet built.

A day is built once, soon after it has been over for ``TIDINGS_STATS_SETTLE_DAYS``
(``service.py``); most runs find nothing to do and cost two small reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.core.logs import get_logger
from tidings.jobs.registry import JobRegistry
from tidings.usage_stats.service import build_due

if TYPE_CHECKING:
    from tidings.core.services import Services

log = get_logger("tidings.usage_stats")
BUILD_EVERY_ROUNDS = 1200  # housekeeping rounds: every ten minutes


async def build_service_stats(rt: Services) -> None:
    for built in await build_due(rt):
        log.info("service_stats_built", day=built.day.isoformat(), buckets=built.buckets,
                 messages=built.messages, seconds=built.seconds)


def register(registry: JobRegistry) -> None:
    registry.chore("service_stats", build_service_stats, every=BUILD_EVERY_ROUNDS)
