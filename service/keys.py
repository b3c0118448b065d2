"""Each environment's Ed25519 signing keys: created, sealed at rest, published.

The private half of every key is stored wrapped by the key-encryption key, with
the environment and key id as associated data. Verification looks a `kid` up in
an in-memory map only (case C14): a token can never make the broker open a file
or query the store by choosing its header.

Keys rotate on the schedule of service/key_schedule.py: a successor is
published before it first signs (case C10), an old key stays published until
every token it signed has expired, and no token outlives its key (case C12).
An emergency revocation (`revoke`) removes a key at once and, when it was the
one signing, replaces it with a key that signs immediately. Every process
reloads its keys when told a key changed (service/store/notify.py) and every
`check_seconds` in any case.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from service import key_schedule
from service.clock import Clock, utc
from service.crypto import KeyEncryptionKey
from service.errors import Conflict, NotFound, TokenBrokerError
from service.key_schedule import SigningKeySettings
from service.store.notify import notify
from service.store.tables import signing_keys

log = structlog.get_logger(__name__)

ALGORITHM = "EdDSA"


class NoSigningKey(TokenBrokerError):
    """No key can sign: every key is past its end, revoked or unreadable."""

    status = 503
    code = "temporarily_unavailable"


@dataclass(frozen=True)
class SigningKey:
    """One key: its id, its public half as a JWK, and its window of use."""

    kid: str
    public_key: Ed25519PublicKey
    public_jwk: dict[str, str]
    created_at: datetime
    not_after: datetime
    private_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    activates_at: datetime | None = None

    @property
    def not_after_timestamp(self) -> float:
        return self.not_after.timestamp()

    @property
    def activates(self) -> float:
        return (self.activates_at or self.created_at).timestamp()

    @property
    def ends(self) -> float:
        return self.not_after.timestamp()

    @property
    def can_sign(self) -> bool:
        return self.private_key is not None


@dataclass(frozen=True)
class KeyState:
    """A key as an operator sees it: its times and where it is in its life."""

    kid: str
    state: str
    created_at: datetime
    activates_at: datetime
    not_after: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class RevokedKey:
    """A revoked key, the key that replaced it (if any), and whether it is new."""

    kid: str
    not_after: float
    replacement: str | None
    newly: bool


class KeyRing:
    """The signing keys of one environment, loaded from the store."""

    def __init__(
        self,
        env: str,
        engine: Engine,
        kek: KeyEncryptionKey,
        clock: Clock,
        settings: SigningKeySettings | None = None,
    ) -> None:
        self.env = env
        self.settings = settings or SigningKeySettings()
        self._engine = engine
        self._kek = kek
        self._clock = clock
        self._lock = threading.RLock()
        self._keys: dict[str, SigningKey] = {}
        self._active: SigningKey | None = None
        # The hot path looks at the schedule again only from this moment on.
        self._check_at = -math.inf
        self._retry_at = -math.inf
        self._stale = True

    def load(self) -> None:
        """Read every unrevoked key; create one when the schedule says so."""
        with self._lock:
            self._load()
            self._maintain(self._clock.now())

    def signing_key(self) -> SigningKey:
        """The key to sign with now. Raises NoSigningKey."""
        now = self._clock.now()
        if now >= self._check_at:
            with self._lock:
                if self._stale:
                    self._load()
                self._maintain(now)
        active = self._active
        if active is None or active.ends <= now:
            raise NoSigningKey(f"environment {self.env!r} has no valid signing key")
        return active

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid`, from memory only; None when unknown."""
        key = self.known_key(kid)
        return None if key is None else key.public_key

    def known_key(self, kid: str) -> SigningKey | None:
        """The unrevoked key `kid`, with its window, from memory only."""
        return self._keys.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The keys verifiers need: unrevoked and not ended, waiting ones too."""
        now = self._clock.now()
        return {"keys": [k.public_jwk for k in self._keys.values() if k.ends > now]}

    def latest_end(self) -> float:
        """When the last token of any key still held can expire at the latest."""
        ends = [key.ends for key in self._keys.values()]
        return max(ends, default=self._clock.now() + self.settings.lifetime_seconds)

    def drop(self, kid: str) -> None:
        """Forget a key revoked elsewhere; the store is read again before signing."""
        with self._lock:
            self._keys.pop(kid, None)
            self._active = key_schedule.signer(self._keys.values(), self._clock.now())
            self._stale = True
            self._check_at = -math.inf

    def rotate(self, overlap: float | None = None) -> SigningKey:
        """Publish a successor now that signs after `overlap` seconds.

        Raises Conflict when a published key is already waiting to sign.
        """
        overlap = self.settings.overlap_seconds if overlap is None else overlap
        with self._lock, self._engine.begin() as connection:
            now = self._clock.now()
            keys = self._serialised_keys(connection)
            if key_schedule.pending(keys, now):
                raise Conflict("a new key is already published and waiting to sign")
            window = key_schedule.successor_window(
                keys, now, self.settings, overlap=overlap
            )
            kid = self._insert(connection, now, *window)
        self.load()
        log.info("signing_key_scheduled", env=self.env, kid=kid, overlap=overlap)
        return self._keys[kid]

    def revoke(self, kid: str) -> RevokedKey:
        """Withdraw a key at once; replace it when nothing else can sign.

        Raises NotFound for a kid this environment never had.
        """
        with self._lock, self._engine.begin() as connection:
            now = self._clock.now()
            row = connection.execute(
                select(signing_keys.c.not_after, signing_keys.c.revoked_at).where(
                    signing_keys.c.env == self.env, signing_keys.c.kid == kid
                )
            ).one_or_none()
            if row is None:
                raise NotFound("this environment has no signing key by that kid")
            replacement = None
            if row.revoked_at is None:
                connection.execute(
                    update(signing_keys)
                    .where(signing_keys.c.env == self.env, signing_keys.c.kid == kid)
                    .values(revoked_at=utc(now))
                )
                keys = self._serialised_keys(connection)
                if key_schedule.signer(keys, now) is None:
                    # An emergency: no overlap, the compromised key must go now.
                    replacement = self._insert(
                        connection, now, now, now + self.settings.lifetime_seconds
                    )
        self.drop(kid)
        self.load()
        return RevokedKey(
            kid, row.not_after.timestamp(), replacement, row.revoked_at is None
        )

    def states(self) -> list[KeyState]:
        """Every key of the environment, revoked ones included, oldest first."""
        now = self._clock.now()
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(signing_keys)
                .where(signing_keys.c.env == self.env)
                .order_by(signing_keys.c.created_at)
            ).all()
        current = key_schedule.signer(self._keys.values(), now)
        return [_state(row, now, current) for row in rows]

    def _maintain(self, now: float) -> None:
        if (
            key_schedule.successor_due(self._keys.values(), now, self.settings)
            and now >= self._retry_at
        ):
            self._create(now)
        keys = list(self._keys.values())
        self._active = key_schedule.signer(keys, now)
        self._check_at = key_schedule.next_change(keys, now, self.settings)
        if key_schedule.successor_due(keys, now, self.settings):
            # The attempt failed: try again later, not on every request.
            self._check_at = min(self._check_at, self._retry_at)
        if self._active is None:
            log.error("signing_key_unavailable", env=self.env)

    def _create(self, now: float) -> None:
        try:
            with self._engine.begin() as connection:
                keys = self._serialised_keys(connection)
                if key_schedule.successor_due(keys, now, self.settings):
                    window = key_schedule.successor_window(keys, now, self.settings)
                    self._insert(connection, now, *window)
        except SQLAlchemyError as error:
            # The alert of case C12: tokens are clamped to the old key's end
            # meanwhile, and refused with 503 once it has passed.
            log.error(
                "signing_key_rotation_failed",
                env=self.env,
                error_type=type(error).__name__,
            )
            self._retry_at = now + self.settings.retry_seconds
            return
        self._load()

    def _serialised_keys(self, connection: Connection) -> list[SigningKey]:
        """The unrevoked keys, read under a lock that replicas take in turn."""
        if connection.dialect.name == "postgresql":
            # Replicas deciding together must agree on one new key.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": f"tokenbroker signing key {self.env}"},
            )
        return [self._from_row(row) for row in self._rows(connection)]

    def _load(self) -> None:
        with self._engine.connect() as connection:
            keys = {row.kid: self._from_row(row) for row in self._rows(connection)}
        self._keys = keys
        self._stale = False
        self._active = key_schedule.signer(keys.values(), self._clock.now())

    def _rows(self, connection: Connection) -> list[Any]:
        return list(
            connection.execute(
                select(signing_keys)
                .where(
                    signing_keys.c.env == self.env, signing_keys.c.revoked_at.is_(None)
                )
                .order_by(signing_keys.c.created_at)
            ).all()
        )

    def _from_row(self, row: Any) -> SigningKey:
        jwk = json.loads(row.public_jwk)
        public = Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"]))
        private = None
        if row.retired_at is None:
            raw = self._kek.unwrap(row.private_key, self._aad(row.kid))
            private = Ed25519PrivateKey.from_private_bytes(raw)
        return SigningKey(
            row.kid, public, jwk, row.created_at, row.not_after, private,
            row.activates_at,
        )  # fmt: skip

    def _insert(
        self, connection: Connection, now: float, activates: float, not_after: float
    ) -> str:
        private = Ed25519PrivateKey.generate()
        jwk = _public_jwk(private.public_key())
        kid = jwk["kid"]
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        connection.execute(
            insert(signing_keys).values(
                env=self.env,
                kid=kid,
                algorithm=ALGORITHM,
                public_jwk=json.dumps(jwk),
                private_key=self._kek.wrap(raw, self._aad(kid)),
                kek_id=self._kek.key_id,
                created_at=utc(now),
                activates_at=_stored(activates),
                not_after=utc(not_after),
            )
        )
        notify(connection, {"type": "keys", "env": self.env})
        log.info(
            "signing_key_created",
            env=self.env,
            kid=kid,
            activates_in=round(activates - now, 3),
        )
        return kid

    def _aad(self, kid: str) -> bytes:
        return f"tokenbroker signing key\x00{self.env}\x00{kid}".encode()


def _stored(moment: float) -> datetime:
    """`moment` as the store keeps it, in whole microseconds, never later.

    Rounded to the nearest, a key created to sign at once would read back as
    activating a fraction of a microsecond after the `now` it was made for, and
    nothing would sign at that `now`.
    """
    kept = utc(moment)
    return kept - timedelta(microseconds=1) if kept.timestamp() > moment else kept


def _state(row: Any, now: float, current: SigningKey | None) -> KeyState:
    activates = row.activates_at or row.created_at
    if row.revoked_at is not None:
        state = "revoked"
    elif row.not_after.timestamp() <= now:
        state = "expired"
    elif current is not None and current.kid == row.kid:
        state = "signing"
    elif activates.timestamp() > now:
        state = "published"
    else:
        state = "retiring"
    return KeyState(
        row.kid, state, row.created_at, activates, row.not_after, row.revoked_at
    )


def _public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    x = _b64encode(
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    # RFC 7638 thumbprint: SHA-256 of the required members in lexical order.
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64encode(hashlib.sha256(canonical.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALGORITHM,
            "use": "sig"}  # fmt: skip


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))
