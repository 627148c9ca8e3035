"""Rate limits: requests per credential and per account, failed logins and binds per address.

Every request that authenticates is charged to two buckets: its credential's (an API
key, a user's session, an SMPP bind: ``RateLimits.check_request``,
``RateLimits.check_submit``) and its account's, the same account bucket whichever
front door the request came through. A parent may give a sub-account its own
requests-per-second (``account_rps``) instead of the default. Failed logins and failed
SMPP binds are counted per client address; past the limit, the address is refused
before its credentials are looked at.

The counting is the ``limits`` library's: a strategy (a fixed window by default, the
cheapest) over a storage, in memory for one process or in Redis when
``TIDINGS_REDIS_URL`` is set, so that several processes share the buckets. In one
process with the default fixed window, the windows are counted by
``web/local_windows.py`` instead, with the same answers at a fraction of the library's
in-memory cost (measured there). A check costs no database round trip. If Redis fails,
requests are let through (and a warning logged): losing the limits for a while is
better than losing the service.

A refused HTTP request is a ``TooManyRequests`` problem with ``Retry-After`` and the
``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` and
``RateLimit-Policy`` fields of draft-ietf-httpapi-ratelimit-headers-06; a request let
through gets the same fields (``Quota.headers``) for the tighter of its two limits.

Client addresses are personal data: they are keyed by ``address_key`` (the runtime
passes a keyed blind index), never stored in clear, in memory or in Redis. An IPv6
client is counted by its /64, which one subscriber usually holds whole.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limits import RateLimitItemPerSecond, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError

from tidings.core.logs import get_logger
from tidings.web.errors import TooManyRequests
from tidings.web.local_windows import Charged, Limit, LocalWindows

if TYPE_CHECKING:
    from tidings.core.settings import Settings

log = get_logger("tidings.ratelimits")

# The credential kinds (``Principal.actor.type``, and the gateway's binds) and the
# setting that gives each its limit; another kind gets an API key's.
CREDENTIAL_SETTINGS = {
    "api_key": "rate_limit_api_key",
    "user": "rate_limit_user_session",
    "smpp_bind": "rate_limit_smpp_bind",
}
DEFAULT_CREDENTIAL = "api_key"
REDIS_TIMEOUT_SECONDS = 1.0  # a Redis that does not answer by then lets the request through
# After a failure, Redis is left alone this long: requests go through without waiting
# on it, rather than each wait out the timeout while it hangs.
STORAGE_RETRY_SECONDS = 1.0
STORAGE_WARNING_SECONDS = 10.0  # at most one warning this often while Redis fails
IPV6_PREFIX = 64
STRATEGIES: dict[str, Callable[[Storage], RateLimiter]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}

AddressKey = Callable[[str], str]
Bucket = tuple[str, ...]  # the identifiers of one bucket, e.g. ("account", "acc_…")


@dataclass(frozen=True)
class Quota:
    """Where a caller stands against one limit, as the RateLimit header fields say it."""

    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int  # until the window frees a request (or starts again)

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit),
                "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_seconds),
                "RateLimit-Policy": f"{self.limit};w={self.window_seconds}"}

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers()`` as an ASGI answer carries them, for the single-send fast path."""
        return [(b"ratelimit-limit", b"%d" % self.limit),
                (b"ratelimit-remaining", b"%d" % self.remaining),
                (b"ratelimit-reset", b"%d" % self.reset_seconds),
                (b"ratelimit-policy", b"%d;w=%d" % (self.limit, self.window_seconds))]

    def refusal_headers(self) -> dict[str, str]:
        """For a 429: the same fields, and when to try again."""
        return {"Retry-After": str(max(1, self.reset_seconds)), **self.headers()}


class RateLimited(TooManyRequests):
    """A request over its credential's or its account's limit."""

    def __init__(self, quota: Quota) -> None:
        super().__init__(f"Too many requests; try again in {max(1, quota.reset_seconds)} s.",
                         code="rate_limited", headers=quota.refusal_headers())
        self.quota = quota


class RateLimits:
    """The buckets of one deployment; a ``Services`` field (``rt.rate_limits``)."""

    def __init__(self, settings: Settings, storage: Storage, *,
                 address_key: AddressKey, closing: Callable[[], Any] | None = None) -> None:
        self.storage = storage
        self._limiter: RateLimiter = STRATEGIES[settings.rate_limit_strategy](storage)
        # One process's fixed windows are counted here, not by the library (its cost:
        # web/local_windows.py).
        self.local = (LocalWindows() if isinstance(storage, MemoryStorage)
                      and settings.rate_limit_strategy == "fixed-window" else None)
        self._credentials = {kind: _limits(getattr(settings, name))
                             for kind, name in CREDENTIAL_SETTINGS.items()}
        self._account = _limits(settings.rate_limit_account)
        self._failed_logins = _limits(settings.rate_limit_failed_logins_per_ip)
        self._failed_binds = _limits(settings.rate_limit_failed_binds_per_ip)
        self._per_second: dict[int, tuple[Limit, ...]] = {}
        self._address_key = address_key
        self._closing = closing
        self._down_until = 0.0
        self._quiet_until = 0.0

    # --- requests -----------------------------------------------------------------

    async def check_request(self, *, account_id: str, credential: tuple[str, str],
                            account_rps: int | None = None) -> Quota | None:
        """Charge one request to its credential (kind, id) and its account; raises
        ``RateLimited`` (a 429) when either is spent. ``account_rps``: the account's own
        requests per second instead of the default. Returns the tighter limit's quota,
        for the answer's RateLimit fields (None if the storage failed)."""
        credential_limits, account_limits = self._limits_of(credential[0], account_rps)
        plan = ((credential_limits, ("credential", *credential)),
                (account_limits, ("account", account_id)))
        if self.local is not None:
            charged = self.local.charge(plan)
            quota = _quota_of(charged)
            if not charged.allowed:
                raise RateLimited(quota)
            return quota
        for limits, bucket in plan:
            refused = await self._charge(limits, bucket)
            if refused is not None:
                raise RateLimited(refused)
        return await self._quota(*min(
            ((limit, bucket) for limits, bucket in plan for limit in limits),
            key=lambda pair: pair[0].rate))

    async def check_submit(self, *, account_id: str, bind_id: str,
                           account_rps: int | None = None) -> bool:
        """An SMPP submit_sm on one bind: whether it may go (False: ESME_RTHROTTLED)."""
        try:
            await self.check_request(account_id=account_id, credential=("smpp_bind", bind_id),
                                     account_rps=account_rps)
        except RateLimited:
            return False
        return True

    def _limits_of(self, kind: str, account_rps: int | None,
                   ) -> tuple[tuple[Limit, ...], tuple[Limit, ...]]:
        credential = self._credentials.get(kind) or self._credentials[DEFAULT_CREDENTIAL]
        if account_rps is None:
            return credential, self._account
        per_second = self._per_second.get(account_rps)
        if per_second is None:  # 0 or less: nothing may go
            per_second = self._per_second[account_rps] = (
                Limit.of(RateLimitItemPerSecond(max(0, account_rps))),)
        return credential, per_second

    # --- failed logins and binds, per client address ------------------------------

    async def note_failed_login(self, address: str) -> None:
        await self._note(self._failed_logins, ("failed_login", self._address(address)))

    async def login_blocked(self, address: str) -> bool:
        """Whether logins from this address are refused now, before any look-up."""
        return await self._blocked(self._failed_logins, ("failed_login",
                                                         self._address(address))) is not None

    async def refuse_blocked_login(self, address: str) -> None:
        """``TooManyRequests`` (with ``Retry-After``) if logins from here are refused."""
        blocked = await self._blocked(self._failed_logins,
                                      ("failed_login", self._address(address)))
        if blocked is not None:
            raise TooManyRequests(
                "Too many failed logins from your address; "
                f"try again in {max(1, blocked.reset_seconds)} s.",
                code="too_many_failed_logins", headers=blocked.refusal_headers())

    async def note_failed_bind(self, address: str) -> None:
        await self._note(self._failed_binds, ("failed_bind", self._address(address)))

    async def bind_blocked(self, address: str) -> bool:
        """Whether SMPP binds from this address are refused now (ESME_RBINDFAIL)."""
        return await self._blocked(self._failed_binds, ("failed_bind",
                                                        self._address(address))) is not None

    def _address(self, address: str) -> str:
        return self._address_key(address_bucket(address))

    # --- counting: this process's windows, or the library's storage ----------------

    async def _charge(self, limits: Sequence[Limit], bucket: Bucket) -> Quota | None:
        """Hit each limit in the library's storage; the quota of the first that
        refused, or None."""
        if self._storage_down():
            return None
        try:
            for limit in limits:
                if not await self._limiter.hit(limit.item, *bucket):
                    return await self._stats(limit, bucket)
        except StorageError:
            self._storage_failed()
        return None

    async def _note(self, limits: Sequence[Limit], bucket: Bucket) -> None:
        if self.local is not None:
            for limit in limits:
                self.local.hit(limit, bucket)
            return
        if self._storage_down():
            return
        try:
            for limit in limits:
                await self._limiter.hit(limit.item, *bucket)
        except StorageError:
            self._storage_failed()

    async def _blocked(self, limits: Sequence[Limit], bucket: Bucket) -> Quota | None:
        if self.local is not None:
            for limit in limits:
                standing = self.local.peek(limit, bucket)
                if not standing.allowed:
                    return _quota_of(standing)
            return None
        if self._storage_down():
            return None
        try:
            for limit in limits:
                if not await self._limiter.test(limit.item, *bucket):
                    return await self._stats(limit, bucket)
        except StorageError:
            self._storage_failed()
        return None

    async def _quota(self, limit: Limit, bucket: Bucket) -> Quota | None:
        if self._storage_down():
            return None
        try:
            return await self._stats(limit, bucket)
        except StorageError:
            self._storage_failed()
            return None

    async def _stats(self, limit: Limit, bucket: Bucket) -> Quota:
        stats = await self._limiter.get_window_stats(limit.item, *bucket)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Quota(limit=limit.amount, window_seconds=limit.period,
                     remaining=max(0, stats.remaining), reset_seconds=reset)

    def _storage_down(self) -> bool:
        return self._down_until > time.monotonic()

    def _storage_failed(self) -> None:
        self._down_until = time.monotonic() + STORAGE_RETRY_SECONDS
        if time.monotonic() >= self._quiet_until:
            self._quiet_until = time.monotonic() + STORAGE_WARNING_SECONDS
            log.warning("rate_limit_storage_failed", detail="requests go unlimited "
                        "while the rate-limit storage (Redis) does not answer")

    async def close(self) -> None:
        if isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()  # its expiry sweep, if one is under way
        if self._closing is not None:
            await self._closing()


def _limits(setting: str) -> tuple[Limit, ...]:
    return tuple(Limit.of(item) for item in parse_many(setting))


def _quota_of(charged: Charged) -> Quota:
    return Quota(limit=charged.limit.amount, window_seconds=charged.limit.period,
                 remaining=charged.remaining, reset_seconds=math.ceil(charged.reset_seconds))


# Where a request's charge is kept, so that the endpoint a fast path hands a request over
# to does not charge it a second time (``charge_once``).
CHARGED_SCOPE_KEY = "tidings.rate_limit"
_UNCHARGED: Any = object()


async def charge_once(limits: RateLimits, scope: MutableMapping[str, Any], *,
                      account_id: str, credential: tuple[str, str],
                      account_rps: int | None = None) -> Quota | None:
    """``check_request`` for one HTTP request (an ASGI scope), once however many layers
    ask; the quota for the answer's RateLimit fields."""
    charged: Quota | RateLimited | None = scope.get(CHARGED_SCOPE_KEY, _UNCHARGED)
    if charged is _UNCHARGED:
        try:
            charged = await limits.check_request(account_id=account_id, credential=credential,
                                                 account_rps=account_rps)
        except RateLimited as refused:
            scope[CHARGED_SCOPE_KEY] = refused
            raise
        scope[CHARGED_SCOPE_KEY] = charged
    elif isinstance(charged, RateLimited):
        raise RateLimited(charged.quota)  # a fresh error: a handler may change the first
    return charged


# The fields of a 429 (and of the 2xx answers of routes behind a key), for OpenAPI.
RATE_LIMIT_HEADER_DOCS: dict[str, dict[str, Any]] = {
    name: {"description": description, "schema": {"type": "integer"}}
    for name, description in (
        ("Retry-After", "Seconds to wait before trying again."),
        ("RateLimit-Limit", "Requests the tightest limit allows in its window."),
        ("RateLimit-Remaining", "Requests left in the window."),
        ("RateLimit-Reset", "Seconds until the window frees a request."))}


def address_bucket(address: str) -> str:
    """Whom failures from this address count against: an IPv4 address as it is, an IPv6
    one by its /64 (an IPv4-mapped one as its IPv4 address); anything else as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


async def open_rate_limits(settings: Settings, *, address_key: AddressKey,
                           key_prefix: str = "tidings") -> RateLimits:
    """In memory, or in Redis when ``settings.redis_url`` is set: checked at once, so
    that a wrong address stops the start rather than leaving every limit off."""
    if not settings.redis_url:
        return RateLimits(settings, MemoryStorage(), address_key=address_key)
    from redis.asyncio import ConnectionPool  # only where Redis is used

    pool = ConnectionPool.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                   socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    # Our own pool, to close it; the library takes one (its annotation says less).
    client_options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(f"async+{settings.redis_url}", implementation="redispy",
                           key_prefix=key_prefix, wrap_exceptions=True, **client_options)
    if not await storage.check():
        await pool.aclose()
        raise RuntimeError("TIDINGS_REDIS_URL: Redis does not answer there")
    return RateLimits(settings, storage, address_key=address_key, closing=pool.aclose)
