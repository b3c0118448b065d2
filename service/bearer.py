"""The bearer token of a request: verified, rate-limited, and labelled if refused.

A token that fails verification is refused the same way whatever the reason.
Only afterwards, for the audit record, the broker reads what the token claims
about itself without trusting it: its `env` or `iss` naming another environment
labels the refusal as a cross-environment attempt. When that environment is
served by this process too, its own keys say whether the token is genuinely
one of its tokens (`claimed_env_verified`), which tells a leaked token from a
forged one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jwt
import structlog
from fastapi import Request

from service.environment import Environment
from service.errors import AuthenticationFailed
from service.tokens import MAX_TOKEN_LENGTH, Principal

if TYPE_CHECKING:
    from service.broker import Broker

log = structlog.get_logger(__name__)

_IDENTIFIER = re.compile(r"[A-Za-z0-9._:/-]{1,128}")


def verify_bearer(
    request: Request, broker: Broker, environment: Environment, token: str
) -> Principal:
    """The principal of a valid token of `environment`, within its rate.

    Raises AuthenticationFailed (401) and Throttled (429).
    """
    try:
        principal = environment.tokens.verify(token)
    except AuthenticationFailed:
        request.state.claimed = claimed_identity(token, environment, broker)
        raise
    request.state.principal = principal
    rate = environment.policy.rate_limit(principal.service)
    broker.limits.check_service(environment.name, principal.service, rate)
    return principal


def claimed_identity(
    token: str, environment: Environment, broker: Broker
) -> dict[str, Any]:
    """What a refused token claims (service, id, environment), unverified.

    For labelling the audit record only: never for a decision.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        return {}
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    found: dict[str, Any] = {
        "claimed_service": _claim(claims, "sub"),
        "claimed_jti": _claim(claims, "jti"),
    }
    claimed_env = _claim(claims, "env")
    issuer = _claim(claims, "iss")
    if (claimed_env is not None and claimed_env != environment.name) or (
        issuer is not None and issuer != environment.issuer
    ):
        other = broker.environments.get(claimed_env or "")
        found.update(
            cross_environment=True,
            claimed_env=claimed_env,
            claimed_issuer=issuer,
            claimed_env_verified=other is not None and _verifies(other, token),
        )
        log.warning(
            "cross_environment_token",
            env=environment.name,
            claimed_env=claimed_env,
            claimed_service=found["claimed_service"],
        )
    return {key: value for key, value in found.items() if value is not None}


def _verifies(environment: Environment, token: str) -> bool:
    try:
        environment.tokens.verify(token)
    except AuthenticationFailed:
        return False
    return True


def _claim(claims: dict[str, Any], name: str) -> str | None:
    # Unverified text: kept only when it has the shape of an identifier.
    value = claims.get(name)
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        return None
    return value
