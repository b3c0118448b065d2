"""Small `get_*` dependencies the routers share; tests override them in fixtures.

Each takes the request alone, rather than the others through `Depends`: every
dependency FastAPI solves costs the hot paths (token issue, secret read) a
measurable share of their time, and these need nothing but the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.bearer import verify_bearer
from service.broker import Broker
from service.environment import Environment
from service.errors import AuthenticationFailed, PermissionDenied
from service.http import authorization
from service.tokens import Principal


async def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


async def get_environment(request: Request) -> Environment:
    """The environment the path names. Raises NotFound for one not served."""
    broker: Broker = request.app.state.broker
    return broker.environment(request.path_params["env"])


async def get_principal(request: Request) -> Principal:
    """The verified caller. Raises AuthenticationFailed (401), Throttled (429),
    and InvalidRequest (400) for more than one Authorization header."""
    broker: Broker = request.app.state.broker
    environment = broker.environment(request.path_params["env"])
    header = authorization(request) or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("a bearer token is required")
    return verify_bearer(request, broker, environment, token.strip())


async def get_admin(
    request: Request, principal: Annotated[Principal, Depends(get_principal)]
) -> Principal:
    """The caller, if its token has `admin` and the policy still makes it admin."""
    broker: Broker = request.app.state.broker
    environment = broker.environment(request.path_params["env"])
    if not (
        principal.admin
        and environment.policy.explain(principal.service, "admin").allowed
    ):
        raise PermissionDenied("this needs the admin scope")
    return principal


BrokerDep = Annotated[Broker, Depends(get_broker)]
EnvironmentDep = Annotated[Environment, Depends(get_environment)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
