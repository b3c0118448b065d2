"""Small `get_*` dependencies the routers share; tests override them in fixtures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from service.bearer import verify_bearer
from service.broker import Broker
from service.environment import Environment
from service.errors import AuthenticationFailed, PermissionDenied
from service.tokens import Principal


def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def get_environment(
    env: Annotated[str, Path(max_length=32)],
    broker: Annotated[Broker, Depends(get_broker)],
) -> Environment:
    return broker.environment(env)


def get_principal(
    request: Request,
    environment: Annotated[Environment, Depends(get_environment)],
    broker: Annotated[Broker, Depends(get_broker)],
) -> Principal:
    """The verified caller. Raises AuthenticationFailed (401), Throttled (429)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("a bearer token is required")
    return verify_bearer(request, broker, environment, token.strip())


def get_admin(
    principal: Annotated[Principal, Depends(get_principal)],
    environment: Annotated[Environment, Depends(get_environment)],
) -> Principal:
    """The caller, if its token has `admin` and the policy still makes it admin."""
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
