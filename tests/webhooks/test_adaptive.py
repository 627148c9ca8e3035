"""The adaptive cap per origin: earned by prompt answers, halved by failures, within 1..ceiling.

Pure: a fake clock (a list holding the time), no sockets.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tidings.core.settings import Settings
from tidings.webhooks.adaptive import OriginLimits, Signal
from tidings.webhooks.scheduling import STALL_SECONDS, Slots
from tidings.webhooks.sender import WebhookResult, origin_ceiling, signal_of

A, B = "https://a.example:443", "https://b.example:443"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def prompt_answers(limits: OriginLimits, origin: str, count: int, clock: Clock) -> None:
    """``count`` prompt successes, each while the origin used its whole cap."""
    for _ in range(count):
        limits.answered(origin, Signal.PROMPT, started_at=clock(),
                        in_flight=limits.limit(origin))
        clock.now += 0.01


def test_prompt_answers_while_the_cap_binds_raise_it_one_by_one_up_to_the_ceiling() -> None:
    clock = Clock()
    limits = OriginLimits(initial=8, ceiling=64, clock=clock)
    assert limits.limit(A) == 8
    prompt_answers(limits, A, 1, clock)
    assert limits.limit(A) == 9
    prompt_answers(limits, A, 10, clock)
    assert limits.limit(A) == 19
    prompt_answers(limits, A, 1_000, clock)
    assert limits.limit(A) == 64  # never above the ceiling
    assert limits.limit(B) == 8  # each origin its own


def test_an_origin_answering_a_trickle_earns_nothing() -> None:
    clock = Clock()
    limits = OriginLimits(initial=8, ceiling=64, clock=clock)
    for _ in range(100):
        limits.answered(A, Signal.PROMPT, started_at=clock(), in_flight=3)
    assert limits.limit(A) == 8


def test_failures_halve_the_cap_once_per_burst_and_never_below_one() -> None:
    clock = Clock()
    limits = OriginLimits(initial=8, ceiling=64, clock=clock)
    prompt_answers(limits, A, 56, clock)
    assert limits.limit(A) == 64
    burst_started = clock()
    clock.now += 10  # they all time out together
    for _ in range(20):
        limits.answered(A, Signal.OVERLOAD, started_at=burst_started, in_flight=64)
    assert limits.limit(A) == 32  # one cut for the whole burst
    for expected in (16, 8, 4, 2, 1, 1, 1):
        clock.now += 1
        limits.answered(A, Signal.OVERLOAD, started_at=clock(), in_flight=1)
        assert limits.limit(A) == expected
    prompt_answers(limits, A, 3, clock)
    assert limits.limit(A) == 4  # and earned back by prompt answers


def test_neutral_answers_leave_the_cap_alone() -> None:
    clock = Clock()
    limits = OriginLimits(initial=8, ceiling=64, clock=clock)
    for _ in range(50):
        limits.answered(A, Signal.NEUTRAL, started_at=clock(), in_flight=8)
    assert limits.limit(A) == 8


def test_the_initial_cap_never_exceeds_the_ceiling() -> None:
    limits = OriginLimits(initial=8, ceiling=3, clock=Clock())
    assert limits.limit(A) == 3


@pytest.mark.parametrize(("initial", "ceiling"), [(0, 8), (8, 0), (-1, -1)])
def test_caps_below_one_are_refused(initial: int, ceiling: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OriginLimits(initial=initial, ceiling=ceiling, clock=Clock())


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_the_ceiling_setting_refuses_garbage(value: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_WEBHOOK_ORIGIN_CONCURRENCY_MAX", value)
    with pytest.raises(ValidationError):
        Settings()


def result(*, ok: bool = False, status: int | None = None, error: str | None = None,
           ms: float = 5.0) -> WebhookResult:
    return WebhookResult(ok=ok, status_code=status, error=error, duration_ms=ms,
                         response_bytes=None)


@pytest.mark.parametrize(("outcome", "signal"), [
    (result(ok=True, status=200), Signal.PROMPT),
    (result(ok=True, status=204, ms=999), Signal.PROMPT),
    (result(ok=True, status=200, ms=1_500), Signal.NEUTRAL),  # slow: earns nothing
    (result(status=500, error="HTTP 500"), Signal.OVERLOAD),
    (result(status=503, error="HTTP 503"), Signal.OVERLOAD),
    (result(status=429, error="HTTP 429"), Signal.OVERLOAD),
    (result(status=404, error="HTTP 404"), Signal.NEUTRAL),  # the URL, not the load
    (result(status=301, error="HTTP 301"), Signal.NEUTRAL),
    (result(error="timeout", ms=10_000), Signal.OVERLOAD),
    (result(error="connection refused"), Signal.OVERLOAD),
    (result(error="DNS lookup failed: Name or service not known"), Signal.NEUTRAL),
    (result(error="TLS error: CERTIFICATE_VERIFY_FAILED"), Signal.NEUTRAL),
    (None, Signal.NEUTRAL),  # cancelled: nothing learnt
])
def test_what_an_outcome_says_of_the_origin(outcome: WebhookResult | None,
                                            signal: Signal) -> None:
    assert signal_of(outcome) is signal


@pytest.mark.parametrize(("concurrency", "wanted", "ceiling"), [
    (64, 64, 48), (64, 32, 32), (64, 1000, 48), (16, 64, 12), (4, 64, 3), (2, 64, 1),
    (1, 64, 1), (64, None, None)])
def test_one_origin_never_grows_past_three_quarters_of_the_slots(
        concurrency: int, wanted: int | None, ceiling: int | None) -> None:
    assert origin_ceiling(concurrency, wanted) == ceiling


def test_slots_adapt_as_requests_end() -> None:
    """Through ``Slots``: prompt answers while full open room; a timeout closes it; a
    stalled origin is judged against its current cap."""
    clock = Clock()
    slots = Slots(total=16, per_origin=2, per_origin_max=4, clock=clock)
    taken = [slots.take(A), slots.take(A)]
    assert not slots.has_room(A)
    slots.give_back(A, Signal.PROMPT, taken_at=taken.pop())  # 2 in flight: the cap bound
    assert slots.limit(A) == 3
    assert slots.has_room(A)  # 1 in flight, room for 2 more
    taken += [slots.take(A), slots.take(A)]
    assert not slots.has_room(A)
    clock.now += STALL_SECONDS + 0.5
    assert slots.stalled(A)
    slots.give_back(A, Signal.OVERLOAD, taken_at=taken.pop())
    assert slots.limit(A) == 1
    assert not slots.has_room(A)  # 2 still in flight, over the new cap
    for when in taken:
        slots.give_back(A, Signal.OVERLOAD, taken_at=when)  # same burst: no second cut
    assert slots.limit(A) == 1
    assert slots.has_room(A)


def test_slots_without_a_ceiling_keep_a_fixed_cap_under_prompt_answers() -> None:
    clock = Clock()
    slots = Slots(total=16, per_origin=2, clock=clock)
    for _ in range(10):
        taken = [slots.take(A), slots.take(A)]
        for when in taken:
            slots.give_back(A, Signal.PROMPT, taken_at=when)
    assert slots.limit(A) == 2
