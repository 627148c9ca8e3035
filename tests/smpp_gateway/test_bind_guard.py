"""Failed binds slowed down, then locked, per key; forgotten in time (a fake clock)."""

from __future__ import annotations

from datetime import timedelta

from tidings.core.clock import FakeClock
from tidings.smpp_gateway.bind_guard import BindGuard, BindPolicy, bind_keys

POLICY = BindPolicy(slow_after=2, first_delay=timedelta(seconds=1),
                    max_delay=timedelta(seconds=3), lock_after=5,
                    lock_for=timedelta(minutes=10), forget_after=timedelta(minutes=30))


def test_failures_are_slowed_down_more_and_more_then_locked() -> None:
    guard = BindGuard(FakeClock(), POLICY)
    keys = bind_keys("acme", "192.0.2.7")
    delays = []
    for _ in range(5):
        assert guard.locked(keys) == []
        delays.append(guard.failed(keys))
    assert delays == [0, 1, 2, 3, 3]  # doubling from the 2nd failure on, capped
    assert guard.locked(keys) == list(keys)


def test_a_lock_ends_after_its_time_and_the_count_starts_again() -> None:
    clock = FakeClock()
    guard = BindGuard(clock, POLICY)
    keys = bind_keys("acme", "192.0.2.7")
    for _ in range(5):
        guard.failed(keys)
    clock.advance(599)
    assert guard.locked(keys) == list(keys)
    clock.advance(2)
    assert guard.locked(keys) == []
    assert guard.failed(keys) == 0  # a fresh start


def test_keys_count_apart_and_a_peer_is_locked_whatever_ids_it_tries() -> None:
    guard = BindGuard(FakeClock(), POLICY)
    for n in range(5):
        guard.failed(bind_keys(f"guess{n}", "192.0.2.7"))
    assert guard.locked(bind_keys("acme", "192.0.2.7")) == ["peer:192.0.2.7"]
    assert guard.locked(bind_keys("acme", "198.51.100.1")) == []


def test_a_good_bind_forgets_its_system_ids_failures_not_its_peers() -> None:
    guard = BindGuard(FakeClock(), POLICY)
    keys = bind_keys("acme", "192.0.2.7")
    for _ in range(4):
        guard.failed(keys)
    guard.succeeded(keys[0])
    guard.failed(keys)
    assert guard.locked(keys) == ["peer:192.0.2.7"]


def test_failures_long_past_are_forgotten() -> None:
    clock = FakeClock()
    guard = BindGuard(clock, POLICY)
    keys = bind_keys("acme", "192.0.2.7")
    for _ in range(4):
        guard.failed(keys)
    clock.advance(31 * 60)
    assert guard.failed(keys) == 0
    assert guard.locked(keys) == []


def test_the_guard_keeps_at_most_max_keys() -> None:
    guard = BindGuard(FakeClock(), BindPolicy(lock_after=1, max_keys=4))
    guard.failed(bind_keys("first", "192.0.2.1"))
    guard.failed(bind_keys("second", "192.0.2.2"))
    guard.failed(bind_keys("third", "192.0.2.3"))
    assert guard.locked(bind_keys("first", "192.0.2.1")) == []  # the oldest went first
    assert guard.locked(bind_keys("third", "192.0.2.3")) == [
        "system_id:third", "peer:192.0.2.3"]
