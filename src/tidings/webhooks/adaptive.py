"""How many requests one origin may have in flight: earned by prompt answers, lost to failures.

A fixed cap per origin keeps a hanging endpoint from holding every slot, but it also
throttles a fast endpoint that receives most of the webhooks. So the cap adapts, as
TCP's congestion window and Envoy's adaptive concurrency do (additive increase,
multiplicative decrease):

- a prompt success (a 2xx within ``PROMPT_SECONDS``) that finished while the origin
  used its whole cap raises the cap by one, up to the ceiling: an origin only earns
  slots it was short of, never by answering a trickle;
- a timeout, a refused connection, a 5xx or a 429 halves it, at least to 1, once per
  burst: failures of requests that started before the last cut do not cut again
  (they were sent under the larger cap);
- anything else (a slow success, a 4xx, a DNS or TLS error) leaves it alone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

PROMPT_SECONDS = 1.0
"""A success within this long is prompt: the origin can take more."""
DECREASE_FACTOR = 0.5
MAX_TRACKED = 10_000
"""Origins whose cap is remembered; past this, those back at the initial cap are forgotten."""


class Signal(enum.Enum):
    PROMPT = "prompt"  # a 2xx within PROMPT_SECONDS
    OVERLOAD = "overload"  # timed out, refused, 5xx or 429
    NEUTRAL = "neutral"  # says nothing about the origin's capacity


@dataclass(slots=True)
class _State:
    limit: int
    cut_at: float  # when the cap was last halved (the clock's time)


class OriginLimits:
    """The cap of each origin, between 1 and ``ceiling``; ``initial`` for one not seen."""

    def __init__(self, *, initial: int, ceiling: int, clock: Callable[[], float]) -> None:
        if initial < 1 or ceiling < 1:
            raise ValueError("the caps per origin must be at least 1")
        self._ceiling = ceiling
        self._initial = min(initial, ceiling)
        self._clock = clock
        self._states: dict[str, _State] = {}

    @property
    def ceiling(self) -> int:
        return self._ceiling

    def limit(self, origin: str) -> int:
        state = self._states.get(origin)
        return self._initial if state is None else state.limit

    def answered(self, origin: str, signal: Signal, *, started_at: float,
                 in_flight: int) -> None:
        """Adjust ``origin``'s cap after a request that started at ``started_at`` ended,
        ``in_flight`` requests to it (this one included) being in flight until then."""
        if signal is Signal.NEUTRAL:
            return
        state = self._states.get(origin)
        if state is None:
            state = _State(self._initial, cut_at=float("-inf"))
        if signal is Signal.PROMPT:
            if in_flight < state.limit or state.limit >= self._ceiling:
                return  # the cap was not what held it back, or is at its ceiling
            state.limit += 1
        else:
            if started_at < state.cut_at:
                return  # sent under the cap that was cut already
            state.limit = max(1, int(state.limit * DECREASE_FACTOR))
            state.cut_at = self._clock()
        self._remember(origin, state)

    def _remember(self, origin: str, state: _State) -> None:
        self._states[origin] = state
        if len(self._states) > MAX_TRACKED:
            self._states = {o: s for o, s in self._states.items() if s.limit != self._initial}
