"""The limiter on its own, in memory and in a real Redis: buckets per credential and per
account, the per-account override, failures per address, and what a failing Redis does.

The limits are per day, so that no test depends on how fast it runs (the library counts
in wall-clock time and cannot take the fake clock)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage
from pydantic import ValidationError
from redis.asyncio import Redis

from tidings.core.settings import Settings
from tidings.web.errors import TooManyRequests
from tidings.web.ratelimits import (
    Quota,
    RateLimits,
    address_bucket,
    open_rate_limits,
)

REDIS_URL = os.environ.get("TIDINGS_TEST_REDIS_URL", "")
ACCOUNT, OTHER_ACCOUNT = "acc_" + "a" * 26, "acc_" + "b" * 26
KEY, OTHER_KEY = ("api_key", "key_one"), ("api_key", "key_two")
TIGHT = {"rate_limit_api_key": "3/day", "rate_limit_user_session": "2/day",
         "rate_limit_account": "5/day", "rate_limit_smpp_bind": "2/day",
         "rate_limit_failed_logins_per_ip": "3/day",
         "rate_limit_failed_binds_per_ip": "2/day"}


def hidden(address: str) -> str:
    """Stands in for the runtime's keyed blind index."""
    return hashlib.sha256(b"test key:" + address.encode()).hexdigest()


def settings(**overrides: Any) -> Settings:
    return Settings(**{**TIGHT, **overrides})


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_limits(request: pytest.FixtureRequest,
                      ) -> AsyncIterator[Callable[..., RateLimits]]:
    """Limits over a fresh storage: in memory, or under a prefix of its own in Redis."""
    made: list[RateLimits] = []
    prefix = f"tidings-test-{uuid.uuid4().hex}"

    def make(**overrides: Any) -> RateLimits:
        if request.param == "memory":
            storage: MemoryStorage | RedisStorage = MemoryStorage()
        else:
            storage = RedisStorage(f"async+{redis_url()}", implementation="redispy",
                                   key_prefix=prefix)
        limits = RateLimits(settings(**overrides), storage, address_key=hidden)
        made.append(limits)
        return limits

    yield make
    for limits in made:
        await limits.close()
    if request.param == "redis":
        await forget_prefix(prefix)


def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("TIDINGS_TEST_REDIS_URL is not set")
    return REDIS_URL


async def stored_keys(limits: RateLimits) -> list[str]:
    """Every key the storage holds, whichever the storage."""
    if isinstance(limits.storage, MemoryStorage):
        local = [str(bucket) for bucket in limits.local.buckets()] if limits.local else []
        return [*limits.storage.storage, *limits.storage.events, *local]
    assert isinstance(limits.storage, RedisStorage)
    prefix = limits.storage.bridge.key_prefix
    async with Redis.from_url(redis_url()) as client:
        return [key.decode() async for key in client.scan_iter(f"{prefix}:*")]


async def forget_prefix(prefix: str) -> None:
    async with Redis.from_url(redis_url()) as client:
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)


async def refusal(limits: RateLimits, **request: Any) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as refused:
        await limits.check_request(**request)
    return refused.value


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window",
                                      "moving-window"])
async def test_a_key_past_its_limit_is_refused_with_retry_after_and_ratelimit_fields(
        make_limits: Callable[..., RateLimits], strategy: str) -> None:
    limits = make_limits(rate_limit_strategy=strategy)
    remaining = []
    for _ in range(3):
        quota = await limits.check_request(account_id=ACCOUNT, credential=KEY)
        assert quota is not None
        remaining.append(quota.remaining)
    assert remaining == [2, 1, 0]  # the key's 3/day is tighter than the account's 5/day
    error = await refusal(limits, account_id=ACCOUNT, credential=KEY)
    assert (error.status, error.code) == (429, "rate_limited")
    headers = error.extra["headers"]
    assert headers["RateLimit-Limit"] == "3"
    assert headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Policy"] == "3;w=86400"
    assert 1 <= int(headers["Retry-After"]) <= 86400
    assert headers["RateLimit-Reset"] == headers["Retry-After"]


async def test_another_key_of_the_account_has_its_own_bucket_but_shares_the_account(
        make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits()
    for _ in range(3):
        await limits.check_request(account_id=ACCOUNT, credential=KEY)
    await refusal(limits, account_id=ACCOUNT, credential=KEY)
    for _ in range(2):  # the account has 5 a day: 3 taken, the refused one not counted
        await limits.check_request(account_id=ACCOUNT, credential=OTHER_KEY)
    error = await refusal(limits, account_id=ACCOUNT, credential=OTHER_KEY)
    assert error.extra["headers"]["RateLimit-Limit"] == "5"  # the account's limit refused it
    # Another account, even with the same key id, is untouched.
    assert await limits.check_request(account_id=OTHER_ACCOUNT, credential=("api_key", "k3"))


async def test_a_per_account_rate_replaces_the_default_account_limit(
        make_limits: Callable[..., RateLimits]) -> None:
    # A moving window counts exactly: the second request, well within the second of
    # the first, is refused whenever the test runs.
    limits = make_limits(rate_limit_api_key="100/second", rate_limit_account="100/second",
                         rate_limit_strategy="moving-window")
    quota = await limits.check_request(account_id=ACCOUNT, credential=KEY, account_rps=1)
    assert quota is not None
    assert (quota.limit, quota.window_seconds) == (1, 1)  # the tighter: the account's 1/s
    error = await refusal(limits, account_id=ACCOUNT, credential=KEY, account_rps=1)
    assert error.extra["headers"]["RateLimit-Policy"] == "1;w=1"
    # Without the override the account's own default applies, in a bucket of its own.
    assert await limits.check_request(account_id=ACCOUNT, credential=OTHER_KEY)


async def test_a_per_account_rate_of_zero_lets_nothing_through(
        make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits()
    error = await refusal(limits, account_id=ACCOUNT, credential=KEY, account_rps=0)
    assert error.extra["headers"]["Retry-After"] == "1"


async def test_each_kind_of_credential_has_its_own_rate(
        make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits(rate_limit_account="100/day")
    for _ in range(2):
        await limits.check_request(account_id=ACCOUNT, credential=("user", "usr_1"))
    error = await refusal(limits, account_id=ACCOUNT, credential=("user", "usr_1"))
    assert error.extra["headers"]["RateLimit-Limit"] == "2"  # rate_limit_user_session
    # A kind without a setting of its own gets an API key's rate.
    for _ in range(3):
        await limits.check_request(account_id=ACCOUNT, credential=("robot", "r1"))
    await refusal(limits, account_id=ACCOUNT, credential=("robot", "r1"))


async def test_an_smpp_bind_is_throttled_past_its_rate_and_other_binds_are_not(
        make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits()
    outcomes = [await limits.check_submit(account_id=ACCOUNT, bind_id="bind-1")
                for _ in range(3)]
    assert outcomes == [True, True, False]
    assert await limits.check_submit(account_id=ACCOUNT, bind_id="bind-2")
    # The submits count against the account like REST requests: 3 of 5 taken.
    await limits.check_request(account_id=ACCOUNT, credential=KEY)
    await limits.check_request(account_id=ACCOUNT, credential=KEY)
    await refusal(limits, account_id=ACCOUNT, credential=KEY)


async def test_failed_logins_from_an_address_block_it_and_no_other(
        make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits()
    for _ in range(2):
        await limits.note_failed_login("198.51.100.7")
        assert not await limits.login_blocked("198.51.100.7")
        await limits.refuse_blocked_login("198.51.100.7")  # no error yet
    await limits.note_failed_login("198.51.100.7")
    assert await limits.login_blocked("198.51.100.7")
    with pytest.raises(TooManyRequests) as refused:
        await limits.refuse_blocked_login("198.51.100.7")
    assert refused.value.code == "too_many_failed_logins"
    assert 1 <= int(refused.value.extra["headers"]["Retry-After"]) <= 86400
    assert not await limits.login_blocked("198.51.100.8")
    assert not await limits.bind_blocked("198.51.100.7")  # logins and binds count apart


async def test_failed_binds_from_one_ipv6_slash_64_count_together(
        make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits()
    await limits.note_failed_bind("2001:db8:1:2::1")
    await limits.note_failed_bind("2001:db8:1:2:ffff::9")
    assert await limits.bind_blocked("2001:db8:1:2::77")
    assert not await limits.bind_blocked("2001:db8:1:3::1")
    assert not await limits.login_blocked("2001:db8:1:2::1")


async def test_no_address_is_kept_in_clear(make_limits: Callable[..., RateLimits]) -> None:
    limits = make_limits()
    await limits.note_failed_bind("198.51.100.7")
    await limits.note_failed_login("2001:db8:1:2::1")
    keys = " ".join(await stored_keys(limits))
    assert hidden("198.51.100.7") in keys
    assert "198.51.100" not in keys
    assert "2001:db8" not in keys


@pytest.mark.parametrize(("address", "bucket"), [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("", ""),
    ("testclient", "testclient"),
])
def test_the_bucket_of_an_address(address: str, bucket: str) -> None:
    assert address_bucket(address) == bucket


async def test_a_redis_that_fails_lets_requests_through() -> None:
    # Nothing listens on port 1; the limiter must not turn that into errors for clients.
    storage = RedisStorage("async+redis://127.0.0.1:1", implementation="redispy",
                           wrap_exceptions=True, socket_connect_timeout=1.0)
    limits = RateLimits(settings(), storage, address_key=hidden)
    calls = 0
    hit = limits._limiter.hit

    async def counted(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        return await hit(*args, **kwargs)

    limits._limiter.hit = counted  # type: ignore[method-assign]
    for _ in range(5):
        assert await limits.check_request(account_id=ACCOUNT, credential=KEY) is None
    assert calls == 1  # then left alone for a while: no request waits on a hung Redis
    await limits.note_failed_login("198.51.100.7")
    assert not await limits.login_blocked("198.51.100.7")
    assert await limits.check_submit(account_id=ACCOUNT, bind_id="bind-1")


async def test_a_redis_url_where_nothing_answers_stops_the_start() -> None:
    with pytest.raises(RuntimeError, match="TIDINGS_REDIS_URL"):
        await open_rate_limits(settings(redis_url="redis://127.0.0.1:1"), address_key=hidden)


async def test_without_a_redis_url_the_buckets_are_in_memory() -> None:
    limits = await open_rate_limits(settings(), address_key=hidden)
    assert isinstance(limits.storage, MemoryStorage)
    await limits.close()


@pytest.mark.redis
async def test_with_a_redis_url_processes_share_the_buckets() -> None:
    prefix = f"tidings-test-{uuid.uuid4().hex}"
    first, second = [await open_rate_limits(settings(redis_url=redis_url()),
                                            address_key=hidden, key_prefix=prefix)
                     for _ in range(2)]
    try:
        assert isinstance(first.storage, RedisStorage)
        for limits in (first, second, first):
            await limits.check_request(account_id=ACCOUNT, credential=KEY)
        await refusal(second, account_id=ACCOUNT, credential=KEY)
    finally:
        await first.close()
        await second.close()
        await forget_prefix(prefix)


@pytest.mark.parametrize(("name", "value"), [
    ("rate_limit_api_key", "lots"),
    ("rate_limit_api_key", "1000/s"),
    ("rate_limit_account", "0/second"),
    ("rate_limit_smpp_bind", ""),
    ("rate_limit_failed_logins_per_ip", "5/fortnight"),
    ("rate_limit_strategy", "token-bucket"),
    ("redis_url", "http://127.0.0.1:6379"),
    ("redis_url", "127.0.0.1:6379"),
])
def test_garbage_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({name: value})


def test_garbage_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_RATE_LIMIT_API_KEY", "plenty")
    with pytest.raises(ValidationError, match="rate_limit_api_key"):
        Settings()



def test_the_fast_paths_raw_fields_say_what_the_named_fields_say() -> None:
    quota = Quota(limit=100, window_seconds=60, remaining=42, reset_seconds=17)
    named = {name.lower().encode(): value.encode() for name, value in quota.headers().items()}
    assert dict(quota.raw_headers()) == named
    assert named[b"ratelimit-policy"] == b"100;w=60"
