"""The privacy domain's housekeeping: the erasure ledger replayed on this database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.jobs.registry import JobRegistry
from tidings.privacy.erasure import REPLAY_GRACE, replay_erasures

if TYPE_CHECKING:
    from tidings.core.services import Services

REPLAY_EVERY_ROUNDS = 20  # housekeeping rounds: every ten seconds


async def replay(rt: Services) -> None:
    await replay_erasures(rt.db, rt.vault, now=rt.clock.now(), grace=REPLAY_GRACE)


def register(registry: JobRegistry) -> None:
    registry.chore("erasure_replay", replay, every=REPLAY_EVERY_ROUNDS)
