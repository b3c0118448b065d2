"""Rate limits: failed client authentications, and a service's request rate.

Failed authentications at the token endpoint are limited per client id and per
source address (`rate_limits` in the settings); once either is spent, every
attempt is refused with 429 and `Retry-After` before the secret is even checked,
so guessing a client secret costs the attacker time. A policy's `rate_limit`
caps every request a service makes with its tokens, and its token requests.

Each limit is a token bucket: bursts up to the rate's count, refilled evenly.
Buckets live in this process's memory, bounded in number, and follow the
broker's clock, so tests move time instead of sleeping.

TODO: with several replicas each process keeps its own buckets, so the
effective limit is the configured one times the number of replicas; a shared
store (PostgreSQL or Redis) would make it exact. Safe for now: the limits
slow guessing down by orders of magnitude either way.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass

import structlog
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict

from policies.rates import Rate, RateField
from service.clock import Clock
from service.errors import Throttled

log = structlog.get_logger(__name__)

MAX_KEYS = 100_000


class RateLimitSettings(BaseModel):
    """`rate_limits:` in the settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failed_auth_per_client: RateField = Rate.parse("10/m")
    failed_auth_per_address: RateField = Rate.parse("30/m")
    # Anonymous refusals recorded one by one; the rest are summed up in one
    # record a minute (service/refusals.py).
    anonymous_refusals_per_address: RateField = Rate.parse("30/m")
    anonymous_refusals_per_environment: RateField = Rate.parse("300/m")


@dataclass(slots=True)
class _Bucket:
    rate: Rate
    tokens: float
    updated: float


class Buckets:
    """Token buckets by key; the least recently used are dropped past a bound."""

    def __init__(self, clock: Clock, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: LRUCache[Hashable, _Bucket] = LRUCache(max_keys)

    def take(self, key: Hashable, rate: Rate) -> float:
        """Take one token: 0 when taken, else the seconds until one is there."""
        with self._lock:
            bucket = self._refilled(key, rate)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate.per_second

    def wait(self, key: Hashable, rate: Rate) -> float:
        """Seconds until a token is there (0 when one is), taking nothing."""
        with self._lock:
            bucket = self._refilled(key, rate)
            return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate.per_second

    def _refilled(self, key: Hashable, rate: Rate) -> _Bucket:
        now = self._clock.now()
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            # A new key, or a policy that changed the rate: start full.
            bucket = _Bucket(rate, float(rate.count), now)
            self._buckets[key] = bucket
            return bucket
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(
            float(rate.count), bucket.tokens + elapsed * rate.per_second
        )
        bucket.updated = now
        return bucket


class Limits:
    """Every rate limit of one broker process."""

    def __init__(self, settings: RateLimitSettings, clock: Clock) -> None:
        self.settings = settings
        self._failures = Buckets(clock)
        self._requests = Buckets(clock)

    def check_client(self, env: str, client_id: str, address: str | None) -> None:
        """Raise Throttled while the client or the address has no attempt left."""
        wait = max(
            self._failures.wait(("client", env, client_id), self._per_client),
            self._failures.wait(("address", address), self._per_address),
        )
        if wait > 0:
            log.info("client_auth_throttled", env=env, retry_after=round(wait, 3))
            raise Throttled(
                "too many failed authentications; try again later", retry_after=wait
            )

    def client_failed(self, env: str, client_id: str, address: str | None) -> None:
        """Count a failed authentication against the client and the address."""
        self._failures.take(("client", env, client_id), self._per_client)
        self._failures.take(("address", address), self._per_address)

    def check_service(self, env: str, service: str, rate: Rate | None) -> None:
        """Count one request of `service`; raise Throttled over its policy's rate."""
        if rate is None:
            return
        wait = self._requests.take((env, service), rate)
        if wait > 0:
            log.info(
                "service_throttled",
                env=env,
                service=service,
                rate=str(rate),
                retry_after=round(wait, 3),
            )
            raise Throttled(
                f"service {service!r} is over its rate limit of {rate}",
                retry_after=wait,
            )

    @property
    def _per_client(self) -> Rate:
        return self.settings.failed_auth_per_client

    @property
    def _per_address(self) -> Rate:
        return self.settings.failed_auth_per_address
