"""Reading, writing and listing secrets on behalf of a verified principal.

Authorization comes first and answers the same 403 whether or not the secret
exists. A read needs both: a token scope naming the secret, and the environment's
policy as it is now (so a deny added after the token was issued still wins).

Reads go through a small cache of recent versions: bounded in size, each entry
kept for a few seconds at most (`cache_seconds`), and dropped in every process
when any process writes, rotates or refreshes the secret (service/secret_changes.py)
or declares it compromised (service/compromise/containment.py), both through
the revocation feed. A read that finds the secret in the cache costs no store
round trip.

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
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from backends.base import (
    ABSENT,
    SecretBackend,
    SecretSummary,
    SecretVersion,
    Stage,
    VersionInfo,
    _Absent,
)
from policies.match import validate_secret_name
from policies.scopes import Action
from service.clock import Clock
from service.environment import Environment, Location
from service.errors import (
    BackendUnavailable,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    SecretNotFound,
    StoreUnavailable,
    TokenBrokerError,
    VersionGone,
)
from service.preconditions import IfMatch
from service.secret_changes import Cause, SecretChanges
from service.sensitive import Sensitive
from service.tokens import Principal

log = structlog.get_logger(__name__)

MAX_PAGE_SIZE = 1000
# Versions of one secret cached at once: the current, the previous, the
# pending and one asked for by id, say. A read of another goes to the store.
MAX_CACHED_VERSIONS = 4
# Writes under `If-Match: *` or a list that another write may overtake before
# the caller's gives up with Conflict.
MATCH_ATTEMPTS = 3

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
        self.cache_seconds = cache_seconds
        # Tells the other processes of a change; the broker sets it once its
        # revocation feed exists.
        self.changes: SecretChanges | None = None
        # Called on every successful read with (env, secret, version, reader);
        # each must be O(1) and must not block (rotation's consumer tracking).
        self.read_observers: list[Callable[[str, str, str, Principal], None]] = []
        # Called with True on a cache hit, False on a miss (metrics).
        self.cache_observer: Callable[[bool], None] | None = None
        self._lock = threading.Lock()
        # Counts `forget` calls: a read that overlaps one may have fetched the
        # version just replaced, so it does not go into the cache.
        self._forgets = 0
        # (env, secret) -> the versions read, by what the read asked for. One
        # entry per secret makes dropping a secret one step; its versions are
        # added to the entry in place, so none outlives the entry's lifetime.
        self._cache: TTLCache[tuple[str, str], dict[str, SecretVersion]] | None = None
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
        """The version asked for, once the principal may see it.

        A version that is pending and not current takes the rotate permission
        too, however it was asked for: only the rotation reads a value that is
        not live yet (case C01). Raises PermissionDenied and what the store's
        read raises.
        """
        _check_name(name)
        self.authorize(environment, principal, Action.READ, name)
        if stage is Stage.PENDING:
            # Only the rotation itself reads a value that is not live yet.
            self.authorize(environment, principal, Action.ROTATE, name)

        key = (environment.name, name)
        asked = f"v{version}" if version else str(stage)
        cached = self._cache.get(key) if self._cache is not None else None
        found = cached.get(asked) if cached is not None else None
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
            self._keep(key, asked, found, forgets)
        if stage is not Stage.PENDING and _only_pending(found):
            # Asked for by its id, or found in the cache: the same rule holds.
            self.authorize(environment, principal, Action.ROTATE, name)
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
        if_match: IfMatch | None = None,
        if_none_match: bool = False,
    ) -> VersionInfo:
        """Store a new current version; a compare-and-set with `if_match`, a
        create-only write with `if_none_match`.

        Raises PreconditionFailed when the precondition does not hold, and
        Conflict when `*` or a list keeps losing to other writes.
        """
        _check_name(name)
        self.authorize(environment, principal, Action.WRITE, name)
        location = environment.locate(name)
        limit = min(self.max_value_bytes, location.backend.max_value_bytes)
        if len(value) > limit:
            raise PayloadTooLarge(
                f"the value is {len(value)} bytes; the limit is {limit} bytes"
            )
        try:
            info = await self._write(
                environment, location, name, value, binary, if_match, if_none_match
            )
        finally:
            # Even a failed write may have reached the store (a timeout).
            await run_in_threadpool(self.changed, environment.name, name, Cause.WRITE)
        log.info(
            "secret_written",
            env=environment.name,
            secret=name,
            version=info.version,
            service=principal.service,
        )
        return info

    async def _write(
        self,
        environment: Environment,
        location: Location,
        name: str,
        value: Sensitive,
        binary: bool,
        if_match: IfMatch | None,
        if_none_match: bool,
    ) -> VersionInfo:
        """The store's write. One version named is the store's own
        compare-and-set; `*` or a list is checked against the current version,
        then written as a compare-and-set on it, and checked again when
        another write moved it in between."""
        backend = location.backend

        async def write(expected: str | _Absent | None) -> VersionInfo:
            return await _in_store(
                environment,
                backend,
                backend.write,
                location.path,
                value,
                binary=binary,
                expected_version=expected,
                named=(location.path, name),
            )

        if if_none_match:
            return await write(ABSENT)
        if if_match is None or if_match.single is not None:
            return await write(None if if_match is None else if_match.single)
        for _attempt in range(MATCH_ATTEMPTS):
            current = await _in_store(
                environment,
                backend,
                _current_version,
                backend,
                location.path,
                named=(location.path, name),
            )
            if current is None:
                raise PreconditionFailed(f"secret {name!r} has no current version")
            if not if_match.matches(current):
                raise PreconditionFailed(
                    f"secret {name!r} is at version {current}, not one expected"
                )
            try:
                return await write(current)
            except PreconditionFailed:
                # Another write moved current since it was read: check again.
                continue
        raise Conflict(
            f"secret {name!r} changed under the write {MATCH_ATTEMPTS} times in a "
            "row; try again"
        )

    async def refresh(
        self, environment: Environment, principal: Principal, name: str
    ) -> VersionInfo:
        """Drop the secret's cached versions in every process now, and answer
        its current version as the store has it.

        Raises PermissionDenied first (it takes the rotate permission),
        StoreUnavailable when the other processes cannot be told (this one has
        dropped its versions all the same), and what a read of the store raises.
        """
        _check_name(name)
        self.authorize(environment, principal, Action.ROTATE, name)
        self.forget(environment.name, name)
        if self.changes is not None:
            try:
                await run_in_threadpool(
                    self.changes.announce, environment.name, name, Cause.REFRESH
                )
            except SQLAlchemyError as error:
                log.warning(
                    "secret_refresh_unannounced",
                    env=environment.name,
                    secret=name,
                    error_type=type(error).__name__,
                )
                raise StoreUnavailable(
                    "the broker's store cannot be reached right now, so the other "
                    "broker processes were not told; each drops its cached "
                    f"versions within {self.cache_seconds:g} s anyway; try again "
                    "later"
                ) from None
        location = environment.locate(name)
        current = await _in_store(
            environment,
            location.backend,
            location.backend.read,
            location.path,
            named=(location.path, name),
        )
        log.info(
            "secret_refreshed",
            env=environment.name,
            secret=name,
            version=current.version,
            service=principal.service,
        )
        return current.info

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

        Every secret a read by name would reach: those the policy declares in
        another backend or under another path, then the default backend's. A
        page may hold fewer entries than asked, even none, while a next token
        is given: secrets the principal may not read are left out. Raises
        InvalidRequest for a page token no listing gave.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        # Secrets the policy places elsewhere than the default backend under
        # their own name come first (the policy knows their names), then the
        # default backend's own listing; the page token says which part is next.
        moved, hidden = _placements(environment)
        part, position = _read_page_token(page_token)
        entries: list[ListedSecret] = []
        backend_token: str | None = None
        if part == _DECLARED:
            elsewhere = [
                name
                for name in moved
                if name.startswith(prefix)
                and self.allows(environment, principal, Action.READ, name)
            ]
            start = int(position or 0)
            chunk = elsewhere[start : start + page_size]
            for name in chunk:
                listed = await _listed_elsewhere(environment, name)
                if listed is not None:
                    entries.append(listed)
            start += len(chunk)
            if start < len(elsewhere):
                return entries, f"{_DECLARED}{start}"
            page_size -= len(chunk)
            if page_size == 0:
                return entries, _BACKEND
        else:
            backend_token = position
        backend = environment.default_backend
        page = await _in_store(
            environment,
            backend,
            backend.list,
            prefix,
            page_size=page_size,
            page_token=backend_token,
        )
        entries += [
            ListedSecret(item.path, item)
            for item in page.items
            if item.path not in hidden
            and self.allows(environment, principal, Action.READ, item.path)
        ]
        next_token = None if page.next_token is None else _BACKEND + page.next_token
        return entries, next_token

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

    def changed(self, env: str, name: str, cause: Cause) -> None:
        """A secret changed through this process: drop its cached versions
        here at once, and in every other process through `changes`.

        Blocks on the store. When the store cannot record the change, the
        other processes keep their versions for at most `cache_seconds`: that
        is logged, and the change itself stands.
        """
        self.forget(env, name)
        if self.changes is None:
            return
        try:
            self.changes.announce(env, name, cause)
        except SQLAlchemyError as error:
            log.warning(
                "secret_change_unannounced",
                env=env,
                secret=name,
                cause=cause.value,
                error_type=type(error).__name__,
                stale_seconds_at_most=self.cache_seconds,
            )

    def forget(self, env: str, name: str) -> None:
        """Drop every cached version of a secret, in this process."""
        if self._cache is None:
            return
        with self._lock:
            self._forgets += 1
            self._cache.pop((env, name), None)

    def _keep(
        self, key: tuple[str, str], asked: str, found: SecretVersion, forgets: int
    ) -> None:
        """Cache what a read fetched, unless a `forget` overlapped the fetch."""
        if self._cache is None:
            return
        with self._lock:
            if self._forgets != forgets:
                return
            versions = self._cache.get(key)
            if versions is None:
                self._cache[key] = {asked: found}
            elif len(versions) < MAX_CACHED_VERSIONS:
                versions[asked] = found


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


# A listing's page token: the part it is in, then where in it.
_DECLARED = "d."
_BACKEND = "b."


def _read_page_token(token: str | None) -> tuple[str, str | None]:
    """(part, position) of a token this listing gave. Raises InvalidRequest."""
    if token is None:
        return _DECLARED, None
    if token.startswith(_BACKEND):
        return _BACKEND, token.removeprefix(_BACKEND) or None
    position = token.removeprefix(_DECLARED)
    if token.startswith(_DECLARED) and position.isdigit() and position.isascii():
        return _DECLARED, position
    raise InvalidRequest("page_token is not one a listing gave")


def _placements(environment: Environment) -> tuple[list[str], set[str]]:
    """The declared names that do not live in the default backend under their
    own name, sorted; and the default backend's paths a listing leaves out:
    those names (a read of one goes elsewhere) and the paths declared names
    are stored at (listed under those names)."""
    default = environment.default_backend
    moved: list[str] = []
    hidden: set[str] = set()
    for name in environment.policy.declarations():
        location = environment.locate(name)
        if location == Location(default, name):
            continue
        moved.append(name)
        hidden.add(name)
        if location.backend is default:
            hidden.add(location.path)
    return sorted(moved), hidden


async def _listed_elsewhere(environment: Environment, name: str) -> ListedSecret | None:
    """The listing entry of a declared secret; None when its store has none yet.

    Versions are metadata: no value is read to list a secret. A store that
    cannot be reached fails the listing (503) rather than leave a secret out.
    """
    location = environment.locate(name)
    try:
        versions = await _in_store(
            environment,
            location.backend,
            location.backend.versions,
            location.path,
            named=(location.path, name),
        )
    except (SecretNotFound, VersionGone):
        return None  # not written yet, or deleted in its store
    current = next((v for v in versions if Stage.CURRENT in v.stages), None)
    if current is None:
        return None
    return ListedSecret(name, SecretSummary(name, current.version, current.created_at))


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


def _current_version(backend: SecretBackend, path: str) -> str | None:
    """The secret's current version; None when it has none to read."""
    try:
        return backend.read(path).version
    except (SecretNotFound, VersionGone):
        return None


def _only_pending(found: SecretVersion) -> bool:
    stages = found.info.stages
    return Stage.PENDING in stages and Stage.CURRENT not in stages


def _check_name(name: str) -> None:
    try:
        validate_secret_name(name)
    except ValueError as error:
        raise InvalidRequest(f"invalid secret name: {error}") from None


__all__ = ["Location", "SecretAccess"]
