"""The OAuth 2.0 token endpoint (client credentials) and key discovery.

Errors follow RFC 6749 section 5.2: `{"error", "error_description"}`, with
`invalid_client` as 401 and everything else as 400.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, unquote_plus

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from policies.duration import parse_duration
from service.audit_http import audit_request
from service.client_auth import authenticate_client
from service.credentials import InvalidClient
from service.dependencies import BrokerDep, EnvironmentDep
from service.errors import InvalidRequest
from service.http import NO_STORE
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)
router = APIRouter(tags=["tokens"])

MAX_FORM_FIELDS = 16


class UnsupportedGrantType(InvalidRequest):
    """The grant type is not client credentials."""

    code = "unsupported_grant_type"


@router.post("/v1/{env}/token")
async def issue_token(
    request: Request, environment: EnvironmentDep, broker: BrokerDep
) -> JSONResponse:
    """Client-credentials grant (RFC 6749 section 4.4)."""
    form = await _form(request)
    if form.get("grant_type") != "client_credentials":
        raise UnsupportedGrantType("grant_type must be client_credentials")
    client_id, secret = _client_credentials(request, form)

    service = await authenticate_client(request, broker, environment, client_id, secret)
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
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }
    )


@router.get("/v1/{env}/jwks.json")
async def jwks(environment: EnvironmentDep) -> JSONResponse:
    return JSONResponse(
        environment.tokens.keyring.jwks(),
        headers={"Cache-Control": "public, max-age=300"},
    )


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form body cannot be parsed") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        # RFC 6749 section 3.2: parameters must not be repeated.
        raise InvalidRequest("a form parameter is repeated")
    return form


def _client_credentials(
    request: Request, form: dict[str, str]
) -> tuple[str, Sensitive]:
    header = request.headers.get("authorization")
    in_body = "client_secret" in form
    if header and in_body:
        raise InvalidRequest("use one client authentication method, not two")
    if header:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("client authentication failed")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidClient("client authentication failed") from None
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise InvalidClient("client authentication failed")
        # RFC 6749 section 2.3.1: both parts are form-encoded before base64.
        return unquote_plus(client_id), Sensitive.from_text(unquote_plus(secret))
    client_id = form.get("client_id", "")
    if not client_id or not in_body:
        raise InvalidClient("client authentication failed")
    return client_id, Sensitive.from_text(form["client_secret"])


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
