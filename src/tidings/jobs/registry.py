"""The kinds of job and the housekeeping chores the domains give the workers.

Each domain's ``tasks.py`` has a ``register(registry)`` that names its job kinds (the
handler of a batch, and how many loops run it) and its chores (work every few
housekeeping rounds, such as sealing the audit chain). The runtime hands one registry
to every domain and builds the workers from it, so it never names a handler, and the
workers never import a domain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidings.jobs.workers import Chore, Handler, Worker

if TYPE_CHECKING:
    from tidings.core.services import Services
    from tidings.core.settings import Settings

SettingsValue = Callable[["Settings"], float]


@dataclass(frozen=True)
class JobKind:
    kind: str
    handler: Handler
    loops: int | Callable[[Settings], int] = 1
    yields_to: str | None = None  # a kind whose backlog this one lets go first
    lease_seconds: SettingsValue | None = None  # None: the settings' job_lease_seconds


@dataclass
class JobRegistry:
    kinds: dict[str, JobKind] = field(default_factory=dict)
    chores: list[Chore] = field(default_factory=list)

    def job(self, kind: str, handler: Handler, *, loops: int | Callable[[Settings], int] = 1,
            yields_to: str | None = None, lease_seconds: SettingsValue | None = None) -> None:
        if kind in self.kinds:
            raise ValueError(f"job kind {kind!r} is registered twice")
        self.kinds[kind] = JobKind(kind, handler, loops, yields_to, lease_seconds)

    def chore(self, name: str, run: Callable[[Services], Awaitable[None]], *,
              every: int = 1) -> None:
        """``run`` every ``every`` housekeeping rounds (``workers.HOUSEKEEPING_SECONDS``)."""
        self.chores.append(Chore(name, run, every))

    @property
    def kind_names(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def workers(self, settings: Settings, *, only: Sequence[str] = ()) -> list[Worker]:
        """A worker for each kind with loops to run (of ``only``, when given)."""
        made = []
        for spec in self.kinds.values():
            loops = spec.loops(settings) if callable(spec.loops) else spec.loops
            if not loops or (only and spec.kind not in only):
                continue
            lease = spec.lease_seconds(settings) if spec.lease_seconds else None
            made.append(Worker(spec.kind, spec.handler, settings.worker_batch_size, loops=loops,
                               yields_to=spec.yields_to, lease_seconds=lease))
        return made
