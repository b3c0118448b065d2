"""Issuing and verifying the broker's access tokens (EdDSA JWTs, through PyJWT).

Verification fails the same way for every reason (expired, wrong issuer, unknown
key, bad signature, malformed): the caller learns only that the token is not
valid, the log gets the reason and the token's fingerprint, never the token.
It is strict where a lax reading would let a token outlive the rules it was
made under: the header's `typ` is `at+jwt` (RFC 9068), `iat`, `nbf` and `exp`
are whole seconds, `iat` is not in the future and `exp` is no later than the
end of the key that signed it.

A verified token is kept in a bounded cache until it expires, so a service that
reuses its token pays for the signature check once. Revocation is checked on
every call all the same, cache hit or not, against the environment's
`RevocationSet` in memory (three hash lookups; see service/revocation_set.py).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
import structlog
from cachetools import TLRUCache

from policies.match import Pattern
from service.clock import Clock
from service.errors import AuthenticationFailed, TokenBrokerError
from service.keys import ALGORITHM, KeyRing, NoSigningKey
from service.revocation_set import RevocationSet

log = structlog.get_logger(__name__)

MAX_TOKEN_LENGTH = 8192
MAX_KID_LENGTH = 128
LEEWAY_SECONDS = 5
SECRET_ACTIONS = ("read", "write", "rotate", "revoke")
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "env"]
TIME_CLAIMS = ("iat", "nbf", "exp")
# RFC 9068 section 4: a resource server takes either, compared without case.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, for logs."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]


@dataclass(frozen=True)
class Principal:
    """Who presented a verified token, and what its scopes allow."""

    env: str
    service: str
    jti: str
    scopes: tuple[str, ...]
    expires_at: float
    admin: bool = False
    patterns: dict[str, tuple[Pattern, ...]] = field(default_factory=dict, repr=False)
    kid: str = ""
    issued_at: float = 0.0
    audience: str = ""

    @classmethod
    def from_claims(cls, claims: dict[str, Any], kid: str = "") -> Principal:
        scopes = tuple(str(claims["scope"]).split())
        patterns: dict[str, list[Pattern]] = {action: [] for action in SECRET_ACTIONS}
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            action, _, pattern = rest.partition(":")
            if kind == "secrets" and action in patterns and pattern:
                patterns[action].append(Pattern.parse(pattern))
        return cls(
            env=str(claims["env"]),
            service=str(claims["sub"]),
            jti=str(claims["jti"]),
            scopes=scopes,
            expires_at=float(claims["exp"]),
            admin="admin" in scopes,
            patterns={action: tuple(found) for action, found in patterns.items()},
            kid=kid,
            # Verified tokens always carry both (REQUIRED_CLAIMS).
            issued_at=float(claims.get("iat", 0)),
            audience=str(claims.get("aud", "")),
        )

    def may(self, action: str, secret_name: str) -> bool:
        """Whether the token's scopes name this action on this secret."""
        if self.admin:
            return True
        return any(p.matches(secret_name) for p in self.patterns.get(action, ()))


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed token; `access_token` goes to the caller and nowhere else."""

    access_token: str = field(repr=False)
    jti: str
    expires_in: int
    scope: str


class TokenAuthority:
    """Signs and verifies one environment's tokens."""

    def __init__(
        self,
        env: str,
        issuer: str,
        keyring: KeyRing,
        clock: Clock,
        *,
        revoked: RevocationSet | None = None,
        cache_size: int = 100_000,
    ) -> None:
        self.env = env
        self.issuer = issuer
        self.keyring = keyring
        self.revoked = revoked or RevocationSet(env)
        self._clock = clock
        self._verified: TLRUCache[str, Principal] = TLRUCache(
            maxsize=cache_size,
            ttu=lambda _token, principal, _now: principal.expires_at,
            timer=clock.now,
        )

    def issue(
        self,
        service: str,
        scopes: Sequence[str],
        *,
        audience: str | None,
        ttl: int,
    ) -> IssuedToken:
        """A signed token; its lifetime never outlasts the signing key (case C12).

        Raises NoSigningKey (503) rather than answer a token that is expired
        or revoked the moment it is made.
        """
        key = self.keyring.signing_key()
        if key.private_key is None:
            raise NoSigningKey("the signing key has no private half")
        now = int(self._clock.now())
        expires = min(now + ttl, int(key.not_after_timestamp))
        if expires <= now:
            raise NoSigningKey("no signing key can cover a token lifetime")
        if now < self.revoked.issuable_from(service):
            raise ServiceRevokedJustNow(
                "the service's tokens were revoked this second; ask again"
            )
        jti = secrets.token_urlsafe(16)
        scope = " ".join(scopes)
        claims = {
            "iss": self.issuer,
            "sub": service,
            "aud": audience or self.issuer,
            "env": self.env,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": jti,
        }
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": "at+jwt"},
        )
        return IssuedToken(token, jti, expires - now, scope)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token of this environment.

        Raises AuthenticationFailed, with the same message for every reason.
        """
        principal = self._verified.get(token)
        if principal is None:
            principal = self._principal(token, self.issuer)
            self._verified[token] = principal
        revoked = self.revoked.revoked(principal)
        if revoked is not None:
            log.info(
                "token_rejected",
                env=self.env,
                reason=f"revoked_{revoked.value}",
                jti=principal.jti,
                service=principal.service,
            )
            raise AuthenticationFailed("the bearer token is not valid")
        return principal

    def inspect(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token of this environment for
        any audience (service-to-service tokens too), or None.

        For introspection and revocation (RFC 7662, RFC 7009): not cached.
        """
        try:
            principal = self._principal(token, None)
        except AuthenticationFailed:
            return None
        return None if self.revoked.revoked(principal) is not None else principal

    def _principal(self, token: str, audience: str | None) -> Principal:
        try:
            kid, claims = self._decode(token, audience)
            return Principal.from_claims(claims, kid)
        except (jwt.PyJWTError, _Unusable, KeyError, ValueError) as error:
            log.info(
                "token_rejected",
                env=self.env,
                reason=error.reason
                if isinstance(error, _Unusable)
                else type(error).__name__,
                token_fingerprint=fingerprint(token),
            )
            raise AuthenticationFailed("the bearer token is not valid") from None

    def _decode(self, token: str, audience: str | None) -> tuple[str, dict[str, Any]]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise _Unusable("token too long")
        header = jwt.get_unverified_header(token)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise _Unusable("typ is not at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise _Unusable("kid missing or malformed")
        key = self.keyring.known_key(kid)
        if key is None:
            raise _Unusable("kid unknown")
        # The algorithm is fixed by the key, never by the token's header.
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=self.issuer,
            # Time is checked below against the broker's clock, which tests move.
            options={
                "require": REQUIRED_CLAIMS,
                "verify_aud": audience is not None,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        _check_times(claims, self._clock.now(), key.not_after_timestamp)
        if claims.get("env") != self.env:
            raise _Unusable("token of another environment")
        return kid, claims


def _check_times(claims: dict[str, Any], now: float, key_ends: float) -> None:
    """Raise _Unusable unless iat, nbf and exp are whole seconds (RFC 7519
    NumericDate, as the broker issues them) that put `now` inside the token's
    lifetime, and that lifetime inside its signing key's."""
    issued, not_before, expires = (claims[name] for name in TIME_CLAIMS)
    # bool is an int to Python, and no time.
    if any(type(value) is not int for value in (issued, not_before, expires)):
        raise _Unusable("a time claim is not an integer")
    if issued > now + LEEWAY_SECONDS:
        raise _Unusable("token issued in the future")
    if not not_before - LEEWAY_SECONDS <= now < expires:
        raise _Unusable("token expired or not yet valid")
    if expires > key_ends:
        raise _Unusable("token outlives its signing key")


class ServiceRevokedJustNow(TokenBrokerError):
    """A token made now would carry the second of a service-wide revocation."""

    status = 503
    code = "temporarily_unavailable"


class _Unusable(Exception):
    """Why a token that parsed is still refused; goes to the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
