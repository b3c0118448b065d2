"""The OAuth 2.0 token endpoint (client credentials) and key discovery.

Errors follow RFC 6749 section 5.2: `{"error", "error_description"}`, with
`invalid_client` as 401 and everything else as 400.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from policies.duration import parse_duration
from service.audit_http import audit_request
from service.broker import Broker
from service.client_auth import authenticate_client, client_credentials, read_form
from service.dependencies import EnvironmentDep
from service.errors import InvalidRequest
from service.http import NO_STORE

log = structlog.get_logger(__name__)
router = APIRouter(tags=["tokens"])

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
JWKS_MAX_AGE_SECONDS = 60


class UnsupportedGrantType(InvalidRequest):
    """The grant type is not client credentials."""

    code = "unsupported_grant_type"


@router.post("/v1/{env}/token")
async def issue_token(request: Request) -> JSONResponse:
    """Client-credentials grant (RFC 6749 section 4.4).

    The hot path takes the request alone: each dependency FastAPI solves costs
    it a measurable share of its time.
    """
    broker: Broker = request.app.state.broker
    environment = broker.environment(request.path_params["env"])
    form = await read_form(request)
    if form.get("grant_type") != "client_credentials":
        raise UnsupportedGrantType("grant_type must be client_credentials")
    client_id, secret = client_credentials(request, form)

    service = await authenticate_client(request, broker, environment, client_id, secret)
    await broker.revocations.wait_until_issuable(environment.name, service)
    requested = form.get("scope", "").split() or None
    audience = form.get("audience") or None
    grant = environment.policy.grant(service, requested, audience)
    ttl = _lifetime(form.get("ttl"), broker.settings.token_ttl_seconds, grant.max_ttl)

    issued = environment.tokens.issue(service, grant.scopes, audience=audience, ttl=ttl)
    log.info(
        "token_issued",
        env=environment.name,
        service=service,
        jti=issued.jti,
        audience=audience,
        scope=issued.scope,
        expires_in=issued.expires_in,
    )
    await audit_request(
        request,
        "token.issue",
        actor=service,
        jti=issued.jti,
        audience=audience,
        scope=issued.scope,
        expires_in=issued.expires_in,
    )
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        },
        headers=NO_STORE,
    )


@router.get("/v1/{env}/.well-known/openid-configuration")
async def discovery(environment: EnvironmentDep) -> JSONResponse:
    issuer = environment.issuer
    return JSONResponse(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks.json",
            "token_endpoint": f"{issuer}/token",
            "introspection_endpoint": f"{issuer}/introspect",
            "revocation_endpoint": f"{issuer}/revoke",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }
    )


@router.get("/v1/{env}/jwks.json")
async def jwks(environment: EnvironmentDep) -> JSONResponse:
    # A short lifetime bounds how long a verifier that honours it keeps a
    # revoked key (case C09); new keys are published an overlap ahead (C10).
    return JSONResponse(
        environment.tokens.keyring.jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
    )


def _lifetime(requested: str | None, default: int, max_ttl: int | None) -> int:
    limit = max_ttl or default
    if requested is None:
        return min(default, limit)
    try:
        ttl = int(requested) if requested.isdigit() else parse_duration(requested)
    except ValueError:
        raise InvalidRequest("ttl must be seconds or a duration such as 15m") from None
    if not 0 < ttl <= limit:
        raise InvalidRequest(f"ttl must be between 1 second and {limit} seconds")
    return ttl
