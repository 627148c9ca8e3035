"""The register's work for the workers: the notices to clients (``subprocessors.notify``)
and staff told of each objection."""

from __future__ import annotations

from tidings.jobs.registry import JobRegistry
from tidings.subprocessors.notices import notify_batch, tell_staff_of_objections
from tidings.subprocessors.register import NOTIFY_JOB

OBJECTIONS_EVERY_ROUNDS = 120  # every minute


def register(registry: JobRegistry) -> None:
    registry.job(NOTIFY_JOB, notify_batch)
    registry.chore("subprocessor_objections", tell_staff_of_objections,
                   every=OBJECTIONS_EVERY_ROUNDS)
