"""Reading, writing and listing secrets on behalf of a verified principal.

Authorization comes first and answers the same 403 whether or not the secret
exists. A read needs both: a token scope naming the secret, and the environment's
policy as it is now (so a deny added after the token was issued still wins).

Reads go through a small cache of recent versions: bounded in size, each entry
kept for a few seconds at most, and dropped when this process writes the secret
(and in every process, through the revocation feed, when it is compromised).

A store that cannot be reached fails only the calls that need it, with 503
naming the store; its own message (which may hold internal URLs) goes to the
log only.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from cachetools import TTLCache
from starlette.concurrency import run_in_threadpool

from backends.base import (
    ABSENT,
    SecretBackend,
    SecretSummary,
    SecretVersion,
    Stage,
    VersionInfo,
)
from policies.match import validate_secret_name
from policies.scopes import Action
from service.clock import Clock
from service.environment import Environment, Location
from service.errors import (
    BackendUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    PermissionDenied,
    TokenBrokerError,
)
from service.sensitive import Sensitive
from service.tokens import Principal

log = structlog.get_logger(__name__)

MAX_PAGE_SIZE = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class ListedSecret:
    """A listing entry: the broker's name for a secret and its current version."""

    name: str
    summary: SecretSummary


class SecretAccess:
    """The secret operations of the HTTP API, for every environment."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_value_bytes: int,
        cache_seconds: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self.max_value_bytes = max_value_bytes
        # Called on every successful read with (env, secret, version, reader);
        # each must be O(1) and must not block (rotation's consumer tracking).
        self.read_observers: list[Callable[[str, str, str, Principal], None]] = []
        # Called with True on a cache hit, False on a miss (metrics).
        self.cache_observer: Callable[[bool], None] | None = None
        self._lock = threading.Lock()
        # Counts `forget` calls: a read that overlaps one may have fetched the
        # version just replaced, so it does not go into the cache.
        self._forgets = 0
        self._cache: TTLCache[tuple[str, str, str], SecretVersion] | None = None
        if cache_seconds > 0:
            self._cache = TTLCache(cache_size, cache_seconds, timer=clock.now)

    async def read(
        self,
        environment: Environment,
        principal: Principal,
        name: str,
        *,
        version: str | None = None,
        stage: Stage | None = None,
    ) -> SecretVersion:
        """The version asked for, once the principal may see it."""
        _check_name(name)
        self.authorize(environment, principal, Action.READ, name)
        if stage is Stage.PENDING:
            # Only the rotation itself reads a value that is not live yet.
            self.authorize(environment, principal, Action.ROTATE, name)

        key = (environment.name, name, f"v{version}" if version else str(stage))
        found = self._cache.get(key) if self._cache is not None else None
        if self.cache_observer is not None and self._cache is not None:
            self.cache_observer(found is not None)
        if found is None:
            location = environment.locate(name)
            forgets = self._forgets
            found = await _in_store(
                environment,
                location.backend,
                location.backend.read,
                location.path,
                version=version,
                stage=stage,
                named=(location.path, name),
            )
            if self._cache is not None:
                with self._lock:
                    if self._forgets == forgets:
                        self._cache[key] = found
        for observe in self.read_observers:
            observe(environment.name, name, found.version, principal)
        return found

    async def write(
        self,
        environment: Environment,
        principal: Principal,
        name: str,
        value: Sensitive,
        *,
        binary: bool,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> VersionInfo:
        """Store a new current version; a compare-and-set with `if_match`."""
        _check_name(name)
        self.authorize(environment, principal, Action.WRITE, name)
        location = environment.locate(name)
        limit = min(self.max_value_bytes, location.backend.max_value_bytes)
        if len(value) > limit:
            raise PayloadTooLarge(
                f"the value is {len(value)} bytes; the limit is {limit} bytes"
            )
        expected = ABSENT if if_none_match else if_match
        try:
            info = await _in_store(
                environment,
                location.backend,
                location.backend.write,
                location.path,
                value,
                binary=binary,
                expected_version=expected,
                named=(location.path, name),
            )
        finally:
            self.forget(environment.name, name)
        log.info(
            "secret_written",
            env=environment.name,
            secret=name,
            version=info.version,
            service=principal.service,
        )
        return info

    async def list(
        self,
        environment: Environment,
        principal: Principal,
        *,
        prefix: str,
        page_size: int,
        page_token: str | None,
    ) -> tuple[list[ListedSecret], str | None]:
        """One page of the secrets the principal may read, and the next token.

        A page may hold fewer entries than asked, even none, while a next token
        is given: secrets the principal may not read are left out.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        backend = environment.default_backend
        # TODO: list secrets that the policy declares in other backends or under
        # other paths too; today the listing covers the default backend only.
        page = await _in_store(
            environment,
            backend,
            backend.list,
            prefix,
            page_size=page_size,
            page_token=page_token,
        )
        visible = [
            ListedSecret(item.path, item)
            for item in page.items
            if self.allows(environment, principal, Action.READ, item.path)
        ]
        return visible, page.next_token

    def authorize(
        self, environment: Environment, principal: Principal, action: Action, name: str
    ) -> None:
        """Raise PermissionDenied unless the token and the policy both allow it."""
        if not self.allows(environment, principal, action, name):
            log.info(
                "secret_access_denied",
                env=environment.name,
                service=principal.service,
                action=action.value,
                secret=name,
            )
            raise PermissionDenied(
                f"the token does not allow {action.value} on this secret"
            )

    @staticmethod
    def allows(
        environment: Environment, principal: Principal, action: Action, name: str
    ) -> bool:
        return (
            principal.may(action.value, name)
            and environment.policy.decide(principal.service, action, name).allowed
        )

    def forget(self, env: str, name: str) -> None:
        """Drop every cached version of a secret."""
        if self._cache is None:
            return
        with self._lock:
            self._forgets += 1
            for key in [key for key in self._cache if key[:2] == (env, name)]:
                self._cache.pop(key, None)


async def _in_store(
    environment: Environment,
    backend: SecretBackend,
    call: Callable[..., T],
    *args: Any,
    named: tuple[str, str] | None = None,
    **kwargs: Any,
) -> T:
    """`call(*args, **kwargs)` in a worker thread. Raises BackendUnavailable
    naming the store when it cannot be reached.

    `named` is a secret's (path inside the store, broker name): the store's
    errors name the path, and the caller is told the name instead.
    """
    try:
        return await run_in_threadpool(call, *args, **kwargs)
    except BackendUnavailable as error:
        raise store_unavailable(environment.name, backend.name, error) from error
    except TokenBrokerError as error:
        if named is None or named[0] == named[1] or repr(named[0]) not in error.message:
            raise
        raise _renamed(error, *named) from error


def _renamed(error: TokenBrokerError, path: str, name: str) -> TokenBrokerError:
    """`error` as the caller may see it: where a secret lives in its store is
    the policy's business (an admin's), so the message names the secret; the
    log keeps the store's own words in `detail`."""
    renamed = copy.copy(error)
    renamed.message = error.message.replace(repr(path), repr(name))
    renamed.args = (renamed.message,)
    renamed.detail = error.detail or error.message
    return renamed


def store_unavailable(
    env: str, backend: str, error: BackendUnavailable
) -> BackendUnavailable:
    """The caller's answer for a store that is down; the store's reason is logged."""
    reason = error.detail or error.message
    log.warning("backend_unavailable", env=env, backend=backend, reason=reason)
    return BackendUnavailable(
        f"the secret store {backend!r} of environment {env!r} cannot be reached "
        "right now; secrets in other stores are not affected; try again later"
    )


def _check_name(name: str) -> None:
    try:
        validate_secret_name(name)
    except ValueError as error:
        raise InvalidRequest(f"invalid secret name: {error}") from None


__all__ = ["Location", "SecretAccess"]
