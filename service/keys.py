"""Each environment's Ed25519 signing keys: created, sealed at rest, published.

The private half of every key is stored wrapped by the key-encryption key, with
the environment and key id as associated data. Verification looks a `kid` up in
an in-memory map only (case C14): a token can never make the broker open a file
or query the store by choosing its header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Engine, insert, select, text

from service.clock import Clock, utc
from service.crypto import KeyEncryptionKey
from service.errors import TokenBrokerError
from service.store.tables import signing_keys

log = structlog.get_logger(__name__)

ALGORITHM = "EdDSA"
KEY_LIFETIME_SECONDS = 90 * 86400
# A key is replaced once less than this remains, so that a token of the longest
# lifetime a policy may allow never has to be cut short by its key's end.
RENEW_WHEN_LEFT_SECONDS = 7 * 86400


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

    @property
    def not_after_timestamp(self) -> float:
        return self.not_after.timestamp()


class KeyRing:
    """The signing keys of one environment, loaded from the store."""

    def __init__(
        self, env: str, engine: Engine, kek: KeyEncryptionKey, clock: Clock
    ) -> None:
        self.env = env
        self._engine = engine
        self._kek = kek
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._active: SigningKey | None = None

    def load(self) -> None:
        """Read every unrevoked key; create one when none can sign."""
        with self._lock:
            self._load()
            if self._needs_new_key():
                self._create()
                self._load()

    def signing_key(self) -> SigningKey:
        """The key to sign with now. Raises NoSigningKey."""
        active = self._active
        now = self._clock.now()
        if active is None or active.not_after_timestamp - now < RENEW_WHEN_LEFT_SECONDS:
            self.load()
            active = self._active
        if active is None or active.not_after_timestamp <= now:
            raise NoSigningKey(f"environment {self.env!r} has no valid signing key")
        return active

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid`, from memory only; None when unknown."""
        key = self._keys.get(kid)
        return None if key is None else key.public_key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys verifiers need: every unrevoked key not yet expired."""
        now = self._clock.now()
        return {
            "keys": [
                key.public_jwk
                for key in self._keys.values()
                if key.not_after_timestamp > now
            ]
        }

    def _needs_new_key(self) -> bool:
        active = self._active
        left = 0.0 if active is None else active.not_after_timestamp - self._clock.now()
        return left < RENEW_WHEN_LEFT_SECONDS

    def _load(self) -> None:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(signing_keys)
                .where(
                    signing_keys.c.env == self.env, signing_keys.c.revoked_at.is_(None)
                )
                .order_by(signing_keys.c.created_at)
            ).all()
        keys = {row.kid: self._from_row(row) for row in rows}
        signers = [key for key in keys.values() if key.private_key is not None]
        self._keys = keys
        self._active = signers[-1] if signers else None

    def _from_row(self, row: Any) -> SigningKey:
        jwk = json.loads(row.public_jwk)
        public = Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"]))
        private = None
        if row.retired_at is None:
            raw = self._kek.unwrap(row.private_key, self._aad(row.kid))
            private = Ed25519PrivateKey.from_private_bytes(raw)
        return SigningKey(row.kid, public, jwk, row.created_at, row.not_after, private)

    def _create(self) -> None:
        private = Ed25519PrivateKey.generate()
        jwk = _public_jwk(private.public_key())
        kid = jwk["kid"]
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        now = self._clock.now()
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together must agree on one new key.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                    {"name": f"tokenbroker signing key {self.env}"},
                )
                newest = connection.execute(
                    select(signing_keys.c.not_after)
                    .where(
                        signing_keys.c.env == self.env,
                        signing_keys.c.revoked_at.is_(None),
                        signing_keys.c.retired_at.is_(None),
                    )
                    .order_by(signing_keys.c.not_after.desc())
                    .limit(1)
                ).scalar()
                if newest and newest.timestamp() - now >= RENEW_WHEN_LEFT_SECONDS:
                    return
            connection.execute(
                insert(signing_keys).values(
                    env=self.env,
                    kid=kid,
                    algorithm=ALGORITHM,
                    public_jwk=json.dumps(jwk),
                    private_key=self._kek.wrap(raw, self._aad(kid)),
                    kek_id=self._kek.key_id,
                    created_at=utc(now),
                    not_after=utc(now + KEY_LIFETIME_SECONDS),
                )
            )
        log.info("signing_key_created", env=self.env, kid=kid)

    def _aad(self, kid: str) -> bytes:
        return f"tokenbroker signing key\x00{self.env}\x00{kid}".encode()


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
