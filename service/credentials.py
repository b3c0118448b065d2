"""Client credentials: how a service proves who it is at the token endpoint.

The broker generates every client secret (256 random bits) and shows it once. The
store keeps only an HMAC-SHA256 of it under a key derived from the KEK: the
secrets are random, so a slow password hash would add nothing but latency, and
without the KEK a stolen store cannot even test a guess. At most two credentials
are live per service, so a caller can switch to a new one without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import ColumnElement, Engine, func, insert, select, text, update
from starlette.concurrency import run_in_threadpool

from service.clock import Clock, utc
from service.crypto import KeyEncryptionKey
from service.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from service.sensitive import Sensitive
from service.store.tables import credentials

log = structlog.get_logger(__name__)

MAX_LIVE = 2
SECRET_PREFIX = "tbs_"  # noqa: S105 (a marker, not a secret)
# A dev secret fixed by hand is the one exception to generated secrets.
MIN_FIXED_SECRET_LENGTH = 16
# How long a process trusts its copy of a service's credential hashes. Revoking a
# credential through another replica takes effect there within this bound.
CACHE_SECONDS = 2.0


class InvalidClient(AuthenticationFailed):
    """Client authentication failed (RFC 6749 section 5.2)."""

    code = "invalid_client"


@dataclass(frozen=True)
class CredentialInfo:
    """A credential's public facts; the secret itself is never kept."""

    id: str
    service: str
    created_at: datetime


@dataclass(frozen=True)
class NewCredential:
    """A credential just created; `secret` is shown to the caller once."""

    info: CredentialInfo
    secret: Sensitive


class CredentialStore:
    """Creates, checks and revokes client credentials of every environment."""

    def __init__(self, engine: Engine, kek: KeyEncryptionKey, clock: Clock) -> None:
        self._engine = engine
        self._hash_key = kek.derive("client secret hash")
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, tuple[bytes, ...]]] = {}

    def create(
        self, env: str, service: str, *, fixed_secret: Sensitive | None = None
    ) -> NewCredential:
        """A new live credential. Raises Conflict when two are live already."""
        secret = fixed_secret or Sensitive.from_text(
            SECRET_PREFIX + secrets.token_urlsafe(32)
        )
        check_fixed_secret(secret)
        info = CredentialInfo(
            id="cred_" + secrets.token_hex(8),
            service=service,
            created_at=utc(self._clock.now()),
        )
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two concurrent creates must not both see one live credential.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                    {"name": f"tokenbroker credentials {env} {service}"},
                )
            live = connection.execute(
                select(func.count())
                .select_from(credentials)
                .where(*_live(env, service))
            ).scalar_one()
            if live >= MAX_LIVE:
                raise Conflict(
                    f"service {service!r} already has {MAX_LIVE} live credentials; "
                    "revoke one first"
                )
            connection.execute(
                insert(credentials).values(
                    id=info.id,
                    env=env,
                    service=service,
                    secret_hash=self._hash(secret),
                    created_at=info.created_at,
                )
            )
        self._forget(env, service)
        log.info("credential_created", env=env, service=service, credential=info.id)
        return NewCredential(info, secret)

    async def authenticate_async(
        self, env: str, client_id: str, secret: Sensitive
    ) -> str:
        """`authenticate` without blocking the event loop on a store query."""
        hashes = self._cached_hashes(env, client_id)
        if hashes is None:
            hashes = await run_in_threadpool(self._live_hashes, env, client_id)
        return self._match(client_id, secret, hashes)

    def authenticate(self, env: str, client_id: str, secret: Sensitive) -> str:
        """The service name when the secret matches a live credential.

        Raises InvalidClient. The check takes the same time whether the service
        exists, has one or two credentials, or none matches.
        """
        return self._match(client_id, secret, self._live_hashes(env, client_id))

    def _match(
        self, client_id: str, secret: Sensitive, hashes: tuple[bytes, ...]
    ) -> str:
        presented = self._hash(secret)
        matched = False
        for candidate in hashes + (bytes(32),) * (MAX_LIVE - len(hashes)):
            matched |= hmac.compare_digest(presented, candidate)
        if not matched or not hashes:
            raise InvalidClient("client authentication failed")
        return client_id

    def list(self, env: str, service: str) -> list[CredentialInfo]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(credentials.c.id, credentials.c.created_at)
                .where(*_live(env, service))
                .order_by(credentials.c.created_at)
            ).all()
        return [CredentialInfo(row.id, service, row.created_at) for row in rows]

    def revoke(self, env: str, service: str, credential_id: str) -> None:
        """Stop a credential from authenticating. Raises NotFound."""
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(credentials)
                .where(*_live(env, service), credentials.c.id == credential_id)
                .values(revoked_at=utc(self._clock.now()))
            ).rowcount
        self._forget(env, service)
        if not changed:
            raise NotFound("the service has no live credential by that id")
        log.info(
            "credential_revoked", env=env, service=service, credential=credential_id
        )

    def has_any(self, env: str, service: str) -> bool:
        return bool(self.list(env, service))

    def ever_issued(self, env: str, service: str) -> bool:
        """Whether the service has or had a credential in `env`, revoked or not:
        a service that never had one holds no token either."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(credentials.c.id)
                .where(credentials.c.env == env, credentials.c.service == service)
                .limit(1)
            ).first()
        return found is not None

    def _cached_hashes(self, env: str, service: str) -> tuple[bytes, ...] | None:
        cached = self._cache.get((env, service))
        if cached is not None and cached[0] > self._clock.now():
            return cached[1]
        return None

    def _live_hashes(self, env: str, service: str) -> tuple[bytes, ...]:
        cached = self._cached_hashes(env, service)
        if cached is not None:
            return cached
        now = self._clock.now()
        with self._engine.connect() as connection:
            hashes = tuple(
                connection.execute(
                    select(credentials.c.secret_hash).where(*_live(env, service))
                ).scalars()
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(env, service)] = (now + CACHE_SECONDS, hashes)
        return hashes

    def _forget(self, env: str, service: str) -> None:
        with self._lock:
            self._cache.pop((env, service), None)

    def _hash(self, secret: Sensitive) -> bytes:
        return hmac.new(self._hash_key, secret.reveal(), hashlib.sha256).digest()


def check_fixed_secret(secret: Sensitive) -> None:
    """Raise InvalidRequest for a client secret too short to be one."""
    if len(secret) < MIN_FIXED_SECRET_LENGTH:
        raise InvalidRequest(
            f"a client secret has at least {MIN_FIXED_SECRET_LENGTH} characters"
        )


def _live(env: str, service: str) -> tuple[ColumnElement[bool], ...]:
    return (
        credentials.c.env == env,
        credentials.c.service == service,
        credentials.c.revoked_at.is_(None),
    )
