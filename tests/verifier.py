"""A verifier of broker tokens as another service would write one, with joserfc.

It uses nothing but the broker's JWKS, fixes the algorithm to EdDSA whatever
the token's header says, and follows the README's guidance (case C10): keep
the key set for `cache_seconds`, and on an unknown `kid` fetch it again, at
most once per `cooldown_seconds`, so that made-up kids cannot cause a storm of
fetches. Time comes from the test's clock.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from service.clock import Clock


class Rejected(Exception):
    """The verifier refused the token."""


class Verifier:
    """Verifies tokens for one audience from one issuer."""

    def __init__(
        self,
        fetch_jwks: Callable[[], dict[str, Any]],
        clock: Clock,
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 3600.0,
        cooldown_seconds: float = 60.0,
    ) -> None:
        self.fetches = 0
        self._fetch_jwks = fetch_jwks
        self._clock = clock
        self._issuer = issuer
        self._audience = audience
        self._cache_seconds = cache_seconds
        self._cooldown = cooldown_seconds
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at = 0.0
        # Only fetches for an unknown kid wait out the cooldown.
        self._refetched_at = -cooldown_seconds

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims. Raises Rejected."""
        now = self._clock.now()
        if self._keys is None or now >= self._fetched_at + self._cache_seconds:
            self._fetch(now)
        kid = _kid(token)
        if kid not in self._kids and now >= self._refetched_at + self._cooldown:
            self._refetched_at = now
            self._fetch(now)
        if kid not in self._kids or self._keys is None:
            raise Rejected("unknown kid")
        try:
            with warnings.catch_warnings():
                # RFC 9864 deprecates the name "EdDSA" for "Ed25519"; the
                # broker's tokens still say EdDSA (SPEC.md, "Tokens").
                warnings.simplefilter("ignore", SecurityWarning)
                decoded = jwt.decode(token, self._keys, algorithms=["EdDSA"])
            jwt.JWTClaimsRegistry(
                now=int(now),
                iss={"essential": True, "value": self._issuer},
                aud={"essential": True, "value": self._audience},
                exp={"essential": True},
            ).validate(decoded.claims)
        except JoseError as error:
            raise Rejected(type(error).__name__) from None
        return dict(decoded.claims)

    def _fetch(self, now: float) -> None:
        document = self._fetch_jwks()
        self.fetches += 1
        self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        self._kids = {str(key["kid"]) for key in document["keys"]}
        self._fetched_at = now


def _kid(token: str) -> str:
    try:
        header = token.split(".", 1)[0]
        decoded = json.loads(
            base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise Rejected("malformed") from error
    kid = decoded.get("kid") if isinstance(decoded, dict) else None
    if not isinstance(kid, str):
        raise Rejected("no kid")
    return kid
