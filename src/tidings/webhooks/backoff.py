"""Retry timing for failed webhook deliveries: capped exponential backoff with jitter.

Attempt 1 is the first delivery. After failed attempt ``n`` the next one is planned
``next_attempt_delay(n)`` seconds later, unless ``should_give_up`` says the event has
been retried for long enough. With the defaults (5 s base, 1 h cap) and a 24 h maximum
age the delays are 5, 10, 20, ... 2560 s, then 3600 s until the 24 h have passed.
"""

from __future__ import annotations

import random
from datetime import datetime

DEFAULT_BASE_SECONDS = 5.0
DEFAULT_CAP_SECONDS = 3600.0
DEFAULT_JITTER = 0.2

# 2**63 times any sensible base is far beyond any cap; stop growing there to avoid overflow.
_MAX_EXPONENT = 63
_default_rng = random.Random()


def _validate(base_seconds: float, cap_seconds: float) -> None:
    if base_seconds <= 0:
        raise ValueError("base_seconds must be positive")
    if cap_seconds < base_seconds:
        raise ValueError("cap_seconds must be at least base_seconds")


def _capped_delay(attempt: int, base_seconds: float, cap_seconds: float) -> float:
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    exponent = min(attempt - 1, _MAX_EXPONENT)
    return min(cap_seconds, base_seconds * 2.0**exponent)


def next_attempt_delay(
    attempt: int,
    *,
    base_seconds: float = DEFAULT_BASE_SECONDS,
    cap_seconds: float = DEFAULT_CAP_SECONDS,
    jitter: float = DEFAULT_JITTER,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 = the first delivery).

    The delay is ``min(cap, base * 2**(attempt - 1))`` multiplied by a uniform random
    factor in ``[1 - jitter, 1 + jitter]``. Jitter is applied after the cap, so retries
    that have reached the cap still spread out instead of arriving in lockstep (a capped
    delay may therefore exceed ``cap_seconds`` by up to ``jitter * cap_seconds``).
    Pass ``rng`` for reproducible results.
    """
    _validate(base_seconds, cap_seconds)
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    delay = _capped_delay(attempt, base_seconds, cap_seconds)
    if jitter == 0:
        return delay
    source = _default_rng if rng is None else rng
    return delay * (1 + source.uniform(-jitter, jitter))


def should_give_up(first_attempt_at: datetime, now: datetime, *, max_age_seconds: float) -> bool:
    """Whether an event first attempted at ``first_attempt_at`` is too old to retry at ``now``.

    Call it with the planned time of the next attempt: once ``max_age_seconds`` have
    passed since the first attempt, no further attempt is made. Both datetimes must be
    timezone-aware (or both naive).
    """
    return (now - first_attempt_at).total_seconds() >= max_age_seconds


def schedule(
    max_age_seconds: float,
    base_seconds: float = DEFAULT_BASE_SECONDS,
    cap_seconds: float = DEFAULT_CAP_SECONDS,
) -> list[float]:
    """The retry delays, without jitter, for an event that keeps failing.

    Element ``i`` is the wait after failed attempt ``i + 1``. The list stops at the last
    retry that still starts before ``max_age_seconds`` have passed since the first
    attempt, matching :func:`should_give_up` evaluated at each planned attempt time.
    """
    _validate(base_seconds, cap_seconds)
    if max_age_seconds <= 0:
        raise ValueError("max_age_seconds must be positive")
    delays: list[float] = []
    elapsed = 0.0
    while True:
        delay = _capped_delay(len(delays) + 1, base_seconds, cap_seconds)
        if elapsed + delay >= max_age_seconds:
            return delays
        delays.append(delay)
        elapsed += delay
