"""Token introspection (RFC 7662) and revocation (RFC 7009), and revocation by id.

Both RFC endpoints take a form body and authenticate the calling service as
the token endpoint does (HTTP Basic or `client_id`/`client_secret`).

- Introspection answers the claims of an active token to the service it was
  issued to, to its audience, and to an admin of the environment; for anything
  else (expired, revoked, malformed, another environment's, someone else's)
  it answers `{"active": false}` and nothing more.
- Revocation revokes a token issued to the calling service, or any token of
  the environment when the caller is an admin. A token that is not valid
  anyway is answered 200 like a revoked one (RFC 7009 section 2.2); a valid
  token of another service is refused with `unauthorized_client`.

`POST tokens/{jti}/revoke` lets an admin revoke a token it does not hold.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from service.audit_http import audit_request, audited_change, source_address
from service.broker import Broker
from service.client_auth import authenticate_client, client_credentials, read_form
from service.clock import utc
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep
from service.environment import Environment
from service.errors import InvalidRequest
from service.http import NO_STORE
from service.tokens import Principal

router = APIRouter(tags=["tokens"])

TokenId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
Reason = Annotated[str | None, Query(max_length=256)]


class UnauthorizedClient(InvalidRequest):
    """The client may not act on this token (RFC 6749 section 5.2)."""

    code = "unauthorized_client"


@router.post("/v1/{env}/introspect")
async def introspect(
    request: Request, environment: EnvironmentDep, broker: BrokerDep
) -> JSONResponse:
    """RFC 7662: whether a token is active, and its claims for who may see them."""
    caller, token = await _caller_and_token(request, environment, broker)
    principal = environment.tokens.inspect(token)
    if principal is not None and not (
        caller in (principal.service, principal.audience)
        or _is_admin(environment, caller)
    ):
        principal = None
    await audit_request(
        request,
        "token.introspect",
        actor=caller,
        target=principal.jti if principal else None,
        active=principal is not None,
    )
    if principal is None:
        return JSONResponse({"active": False}, headers=NO_STORE)
    return JSONResponse(_claims(principal, environment), headers=NO_STORE)


@router.post("/v1/{env}/revoke")
async def revoke(
    request: Request, environment: EnvironmentDep, broker: BrokerDep
) -> Response:
    """RFC 7009: revoke a token of the caller (or any, for an admin)."""
    caller, token = await _caller_and_token(request, environment, broker)
    principal = environment.tokens.inspect(token)
    if principal is None:
        return Response(status_code=200, headers=NO_STORE)
    if caller != principal.service and not _is_admin(environment, caller):
        raise UnauthorizedClient("the token was not issued to this client")
    async with audited_change(
        request, "token.revoke", own_outcome=True, actor=caller, target=principal.jti
    ):
        await run_in_threadpool(
            broker.revocations.revoke_token,
            principal,
            reason="revoked by its holder (RFC 7009)",
            actor=caller,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
    return Response(status_code=200, headers=NO_STORE)


@router.post("/v1/{env}/tokens/{jti}/revoke")
async def revoke_by_id(
    jti: TokenId,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
    reason: Reason = None,
) -> JSONResponse:
    """Revoke a token by its `jti`, without holding it."""
    async with audited_change(
        request, "token.revoke", own_outcome=True, target=jti, reason=reason
    ):
        revoked = await run_in_threadpool(
            broker.revocations.revoke_jti,
            environment.name,
            jti,
            reason=reason,
            actor=admin.service,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
    return JSONResponse(
        {
            "jti": jti,
            "revoked_at": _iso(revoked.revoked_at),
            "kept_until": _iso(revoked.expires_at),
        }
    )


async def _caller_and_token(
    request: Request, environment: Environment, broker: Broker
) -> tuple[str, str]:
    form = await read_form(request)
    client_id, secret = client_credentials(request, form)
    caller = await authenticate_client(request, broker, environment, client_id, secret)
    request.state.client_id = caller
    token = form.get("token", "").strip()
    if not token:
        raise InvalidRequest("the form needs a token")
    return caller, token


def _is_admin(environment: Environment, service: str) -> bool:
    return environment.policy.explain(service, "admin").allowed


def _claims(principal: Principal, environment: Environment) -> dict[str, object]:
    return {
        "active": True,
        "scope": " ".join(principal.scopes),
        "client_id": principal.service,
        "sub": principal.service,
        "aud": principal.audience,
        "iss": environment.issuer,
        "env": principal.env,
        "jti": principal.jti,
        "iat": int(principal.issued_at),
        "exp": int(principal.expires_at),
        "token_type": "Bearer",
    }


def _iso(timestamp: float) -> str:
    return utc(timestamp).isoformat()
