"""Service credentials: create one (shown once), list them, revoke one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from service.audit_http import audit_request
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep
from service.environment import Environment
from service.errors import NotFound
from service.http import NO_STORE

router = APIRouter(tags=["services"])

ServiceName = Annotated[str, Path(max_length=64)]


@router.post("/v1/{env}/services/{service}/credentials", status_code=201)
async def create_credential(
    service: ServiceName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
) -> JSONResponse:
    _require_service(environment, service)
    created = await run_in_threadpool(
        broker.credentials.create, environment.name, service
    )
    await audit_request(
        request, "credential.create", target=service, version=created.info.id
    )
    return JSONResponse(
        {
            "client_id": service,
            "client_secret": created.secret.reveal_text(),
            "credential_id": created.info.id,
            "created_at": created.info.created_at.isoformat(),
            "token_endpoint": f"{environment.issuer}/token",
        },
        status_code=201,
        headers=NO_STORE,
    )


@router.get("/v1/{env}/services/{service}/credentials")
async def list_credentials(
    service: ServiceName,
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
) -> JSONResponse:
    found = await run_in_threadpool(broker.credentials.list, environment.name, service)
    return JSONResponse(
        {
            "credentials": [
                {"credential_id": info.id, "created_at": info.created_at.isoformat()}
                for info in found
            ]
        }
    )


@router.delete("/v1/{env}/services/{service}/credentials/{credential_id}")
async def revoke_credential(
    service: ServiceName,
    credential_id: Annotated[str, Path(max_length=40)],
    request: Request,
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
) -> Response:
    await run_in_threadpool(
        broker.credentials.revoke, environment.name, service, credential_id
    )
    await audit_request(
        request, "credential.revoke", target=service, version=credential_id
    )
    return Response(status_code=204)


def _require_service(environment: Environment, service: str) -> None:
    if not environment.policy.has_service(service):
        raise NotFound(
            f"no policy names a service {service!r}; apply one that does first"
        )
